// Package parallel runs one function for many items at once: the
// concurrent starts of StartAll, the removals of a teardown.
package parallel

import "sync"

// Each calls f for every item at once and returns their errors, in the
// order of items (nil where f succeeded), when all have returned.
func Each[T any](items []T, f func(i int, item T) error) []error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, item := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, item)
		}()
	}
	wg.Wait()
	return errs
}
