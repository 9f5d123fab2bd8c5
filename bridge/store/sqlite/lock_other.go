//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// lockFile takes no lock where flock is missing: one serve per file is
// then the operator's to ensure.
func lockFile(*os.File) error { return nil }
