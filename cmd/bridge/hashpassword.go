package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// hashCost is bridge hash-password's default bcrypt cost: about a quarter
// of a second per check on a laptop, which the console pays once per user
// per few minutes (it caches a successful check).
const hashCost = 12

func hashPasswordCommand() *cobra.Command {
	var cost int
	c := &cobra.Command{
		Use:   "hash-password [--cost N]",
		Short: "read a console password (terminal or stdin), print its bcrypt hash",
		Long: `Read a password for a console user, typed twice without echo at a
terminal, or else the first line of stdin, and print its bcrypt hash for
console.users in the config (e.g. as CONSOLE_ADMIN_HASH). The password is
never taken from the command line, where ps and the shell history see it.`,
		Example: "  bridge hash-password\n  echo \"$PASSWORD\" | bridge hash-password",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("the password is read from the terminal or stdin, never from the command line")
			}
			if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
				return usagef("--cost must be from %d to %d", bcrypt.MinCost, bcrypt.MaxCost)
			}
			return nil
		},
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(cmdHashPassword(cost, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	c.Flags().IntVar(&cost, "cost", hashCost, fmt.Sprintf("bcrypt cost `N`, %d to %d", bcrypt.MinCost, bcrypt.MaxCost))
	return c
}

func cmdHashPassword(cost int, stdout, stderr io.Writer) int {
	pw, err := readPassword(os.Stdin, stderr)
	if err != nil {
		return fail(stderr, "hash-password: %v", err)
	}
	hash, err := hashPassword(pw, cost)
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
