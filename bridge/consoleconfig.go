package bridge

import (
	"net"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// IsLoopbackListen reports whether a listen address (host:port) can be
// reached only from this machine: its host is localhost or a loopback IP.
// An empty host (":8081") listens on every interface and is not loopback.
func IsLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateConsole checks the console section: a host:port listen address
// that is not the webhooks', user names basic auth can carry, every hash a
// bcrypt hash, and users whenever the console is reachable from other
// machines.
func (l *loader) validateConsole(cfg *Config, n *yaml.Node) {
	c := cfg.Console
	if c == nil {
		return
	}
	switch _, port, err := net.SplitHostPort(c.Listen); {
	case c.Listen == "":
		l.add(FindKey(n, "listen"), `console: listen is required (for example "127.0.0.1:8081")`)
	case err != nil:
		l.add(FindKey(n, "listen"), "console: listen %q is not host:port (for example 127.0.0.1:8081)", c.Listen)
	case !validPort(port):
		l.add(FindKey(n, "listen"), "console: listen %q: port %q is not a number from 0 to 65535", c.Listen, port)
	case c.Listen == cfg.Server.Listen:
		l.add(FindKey(n, "listen"), "console: listen %q is server.listen's too: give the console an address of its own", c.Listen)
	}
	if len(c.Users) == 0 && c.Listen != "" && !IsLoopbackListen(c.Listen) {
		l.add(FindKey(n, "listen"), "console: listen %q is reachable from other machines, and no users are set: add users (a bcrypt hash each, from `bridge hash-password`) or listen on 127.0.0.1", c.Listen)
	}
	users := mapValue(n, "users")
	for name, hash := range c.Users {
		line := FindKey(users, name)
		if line == 0 {
			line = FindKey(n, "users")
		}
		if name == "" || strings.ContainsAny(name, ":") || strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			l.add(line, "console: users: %q is not a user name basic auth can carry (no colon, no control characters)", name)
		}
		if _, err := bcrypt.Cost([]byte(hash.Value())); err != nil {
			// The hash is a secret of sorts: say what is wrong, not what it is.
			l.add(line, "console: users: %s: not a bcrypt hash (make one with `bridge hash-password`)", name)
		}
	}
}

// validPort reports whether p is a port number.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}
