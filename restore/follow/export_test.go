package follow

// SetBeforeLink sets a function called just before the first restore links
// the copy in place (nil: none), as another process could act there.
func SetBeforeLink(f func(out string)) { beforeLink = f }

// SetAfterRestore sets a function called between the two transactions
// that change the copy's page size (nil: none); its error stops there.
func SetAfterRestore(f func() error) { afterRestore = f }

// SetBeforeBackup sets a function called just before the backup that
// changes the copy's page size (nil: none); its error is the backup's.
func SetBeforeBackup(f func() error) { beforeBackup = f }
