package report

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/provium/provium/internal/result"
)

// JSON writes events as JSON lines, one object per line. It is safe for
// concurrent use: files running in parallel emit into the same stream.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
	now func() time.Time
	err error
}

// NewJSON returns a JSON event writer to w.
func NewJSON(w io.Writer) *JSON {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages hold "<" and ">"; keep them readable
	return &JSON{enc: enc, now: time.Now}
}

// Emit writes e, stamping its time if unset and its Seconds from Duration.
func (j *JSON) Emit(e result.Event) {
	if e.Time.IsZero() {
		e.Time = j.now()
	}
	if e.Duration != 0 {
		e.Seconds = e.Duration.Seconds()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.enc.Encode(e); err != nil && j.err == nil {
		j.err = err
	}
}

// Err returns the first write error.
func (j *JSON) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}
