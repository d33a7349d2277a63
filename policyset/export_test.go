package policyset

// What the tests observe of a running Watcher.

// Done is closed when the watch has ended (Stop, its context, or the
// connection closed).
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Delivered is the KVRevision of the last set handed to fn; 0 before the
// first.
func (w *Watcher) Delivered() uint64 { return w.delivered.Load() }

// Skipped is how many stored values were not valid policy sets.
func (w *Watcher) Skipped() uint64 { return w.skipped.Load() }

// Restarts is how many times the watcher was re-created (after a reconnect,
// or when the server ended it).
func (w *Watcher) Restarts() uint64 { return w.restarts.Load() }
