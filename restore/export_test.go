package restore

// WithReplaceStep returns opts with a function called after each step of a
// replacement of an existing database: returning an error stops the
// restore there, as a kill would.
func WithReplaceStep(opts Options, step func(string) error) Options {
	opts.replaceStep = step
	return opts
}
