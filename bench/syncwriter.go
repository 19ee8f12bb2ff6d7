package main

import (
	"io"
	"sync"
)

// syncWriter lets the benchmark read a child's stdout while it is written.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
