package sqlite

import (
	"os"
	"syscall"
)

// dataSync flushes f's data (and only the metadata needed to read it back)
// to disk: cheaper than fsync for the WAL, which keeps its size.
func dataSync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
