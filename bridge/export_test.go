package bridge

// The stores live in packages of their own that import this one, so this
// package's tests cannot import them: storehook_test.go (package
// bridge_test, compiled into the same test binary) fills these in with the
// SQLite store.
var (
	// OpenTestStore opens an SQLite store (sync: normal) at path.
	OpenTestStore func(path string) (Store, error)
	// ExecTestStore runs stmt on an SQLite test store's writer connection,
	// for tests that make the store fail on purpose.
	ExecTestStore func(s Store, stmt string) error
)
