package harness

import (
	"context"
	"testing"
	"time"

	"github.com/provium/provium/internal/result"
)

// A fixture build is reported to the file whose request built it, through
// the emit its request carried; without one, it is dropped.
func TestFixtureBuiltGoesToTheRequestingFile(t *testing.T) {
	var got []result.Event
	h := &Harness{}
	ctx := withEmit(context.Background(), func(e result.Event) { got = append(got, e) })
	h.fixtureBuilt(ctx, "base", 3*time.Second)
	if len(got) != 1 || got[0].Kind != result.FixtureBuilt || got[0].Name != "base" || got[0].Duration != 3*time.Second {
		t.Fatalf("events = %+v, want one fixture_built of base", got)
	}
	h.fixtureBuilt(context.Background(), "other", time.Second) // no emit: no panic, nothing sent
	if len(got) != 1 {
		t.Errorf("an event without an emit went somewhere: %+v", got)
	}
}
