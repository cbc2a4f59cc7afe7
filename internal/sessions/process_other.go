//go:build !unix

package sessions

import "time"

// processState cannot judge a process here.
func processState(int, time.Time) ProcessState { return ProcessUnknown }
