package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// hashCost is bridge hash-password's default bcrypt cost: about a quarter
// of a second per check on a laptop, which the console pays once per user
// per few minutes (it caches a successful check).
const hashCost = 12

func cmdHashPassword(args []string, stdout, stderr io.Writer) int {
	f := newFlags("hash-password", stderr)
	cost := f.Int("cost", hashCost, fmt.Sprintf("bcrypt cost, %d to %d", bcrypt.MinCost, bcrypt.MaxCost))
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		return fail(stderr, "hash-password: the password is read from the terminal or stdin, never from the command line")
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		return fail(stderr, "hash-password: --cost must be from %d to %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	pw, err := readPassword(os.Stdin, stderr)
	if err != nil {
		return fail(stderr, "hash-password: %v", err)
	}
	hash, err := hashPassword(pw, *cost)
	if err != nil {
		return fail(stderr, "hash-password: %v", err)
	}
	fmt.Fprintln(stdout, hash)
	return 0
}

// hashPassword returns the bcrypt hash of a console password.
func hashPassword(pw []byte, cost int) (string, error) {
	switch {
	case len(pw) == 0:
		return "", errors.New("the password is empty")
	case len(pw) > 72:
		return "", errors.New("the password is longer than 72 bytes, bcrypt's limit")
	}
	h, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// readPassword reads the password: typed twice at a terminal, without
// echo, or else the first line of in (a trailing newline is not part of it).
func readPassword(in *os.File, prompt io.Writer) ([]byte, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return readPasswordLine(in)
	}
	fmt.Fprint(prompt, "Password: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(prompt, "Again: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pw, again) {
		return nil, errors.New("the two passwords differ")
	}
	return pw, nil
}

// readPasswordLine reads one line from a pipe or file: `printf %s "$PW" |
// bridge hash-password` and `echo "$PW" | bridge hash-password` give the
// same hash.
func readPasswordLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}
