package follow

// SetBeforeLink sets a function called just before the first restore links
// the copy in place (nil: none), as another process could act there.
func SetBeforeLink(f func(out string)) { beforeLink = f }
