package storage

// SetPruneBatch sets the prune batch size for a test and returns a function
// restoring it.
func SetPruneBatch(n int) (restore func()) {
	old := pruneBatch
	pruneBatch = n
	return func() { pruneBatch = old }
}
