package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/provium/provium/internal/cache"
)

// snapshotFD is the name the snapshot file descriptor is known by in QEMU.
const snapshotFD = "provium-snapshot"

// migrationPoll is how often migration state is polled, in case an event
// is missed; completion itself is normally signalled by an event.
const migrationPoll = 100 * time.Millisecond

// migrationBandwidth lifts QEMU's default 32 MiB/s cap on migration: the
// stream goes to a local file, as fast as the disk takes it.
const migrationBandwidth = 1 << 40

type migrationInfo struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
}

// SaveSnapshot stops the guest and writes its whole state (RAM and
// devices) to f as a migration stream, which Config.Incoming loads into a
// new QEMU. The guest stays stopped afterwards; QEMU is left in the
// "postmigrate" state, good only for being killed.
//
// QEMU 7.2 cannot migrate to a file by name, so f's descriptor is passed
// over QMP (getfd) and the stream written to it (fd: URI).
func (p *Process) SaveSnapshot(ctx context.Context, f *os.File) error {
	return p.save(ctx, f, false)
}

// SaveTemplate is SaveSnapshot for a guest whose RAM is a file mapped
// shared (Config.Memory, MemoryShared): the stream gets the state of the
// devices only, the RAM being in the file already. A QEMU started with
// the file and Config.Template loads it.
func (p *Process) SaveTemplate(ctx context.Context, f *os.File) error {
	return p.save(ctx, f, true)
}

func (p *Process) save(ctx context.Context, f *os.File, template bool) error {
	if err := p.Stop(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrMigration, err)
	}
	caps := []map[string]any{{"capability": "events", "state": true}}
	if template {
		caps = append(caps, map[string]any{"capability": ignoreShared, "state": true})
	}
	if _, err := p.QMP(ctx, "migrate-set-capabilities", map[string]any{
		"capabilities": caps,
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrMigration, err)
	}
	if _, err := p.QMP(ctx, "migrate-set-parameters", map[string]any{
		"max-bandwidth": migrationBandwidth,
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrMigration, err)
	}
	if _, err := p.qmp.ExecuteWithFile(ctx, "getfd", map[string]string{"fdname": snapshotFD}, f); err != nil {
		return fmt.Errorf("%w: pass %s: %w", ErrMigration, f.Name(), err)
	}
	events, unsubscribe := p.qmp.Subscribe()
	defer unsubscribe()
	if _, err := p.QMP(ctx, "migrate", map[string]string{"uri": "fd:" + snapshotFD}); err != nil {
		p.qmp.Execute(context.Background(), "closefd", map[string]string{"fdname": snapshotFD})
		return fmt.Errorf("%w: %w", ErrMigration, err)
	}

	tick := time.NewTicker(migrationPoll)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil // connection gone; p.done says why
				continue
			}
			if ev.Name != "MIGRATION" {
				continue
			}
			var st migrationInfo
			json.Unmarshal(ev.Data, &st)
			if !finished(st.Status) {
				continue
			}
		case <-tick.C:
		case <-p.done:
			return fmt.Errorf("%w: %w", ErrMigration, p.exitErr())
		case <-ctx.Done():
			p.qmp.Execute(context.Background(), "migrate_cancel", nil)
			return fmt.Errorf("%w: %w", ErrMigration, ctx.Err())
		}
		info, err := p.queryMigrate(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMigration, err)
		}
		switch info.Status {
		case "completed":
			return p.waitLeaving(ctx, "finish-migrate")
		case "failed", "cancelled":
			msg := info.ErrorDesc
			if msg == "" {
				msg = "no reason given"
			}
			return fmt.Errorf("%w: migration %s: %s", ErrMigration, info.Status, msg)
		}
	}
}

// waitLeaving polls the run state until it is no longer from: a completed
// migration reports "completed" a moment before the VM reaches
// "postmigrate", and a caller may act on the state at once.
func (p *Process) waitLeaving(ctx context.Context, from string) error {
	for {
		st, err := p.Status(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMigration, err)
		}
		if st != from {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: still %s: %w", ErrMigration, from, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func finished(status string) bool {
	return status == "completed" || status == "failed" || status == "cancelled"
}

func (p *Process) queryMigrate(ctx context.Context) (migrationInfo, error) {
	var info migrationInfo
	ret, err := p.QMP(ctx, "query-migrate", nil)
	if err != nil {
		return info, err
	}
	err = json.Unmarshal(ret, &info)
	return info, err
}

// ignoreShared is the migration capability that leaves RAM mapped shared
// out of the stream.
const ignoreShared = "x-ignore-shared"

// loadTemplate starts loading the template state on the descriptor fd of
// a QEMU waiting with -incoming defer, the RAM left to its memory file.
func (p *Process) loadTemplate(ctx context.Context, fd int) error {
	if _, err := p.QMP(ctx, "migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": ignoreShared, "state": true}},
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrMigration, err)
	}
	if _, err := p.QMP(ctx, "migrate-incoming", map[string]string{"uri": fmt.Sprintf("fd:%d", fd)}); err != nil {
		return fmt.Errorf("%w: %w", ErrMigration, err)
	}
	return nil
}

var templates struct {
	sync.Once
	err error
}

// Templates reports whether this QEMU can save and load templates (its
// migration has the x-ignore-shared capability) and, if not, why. It
// asks a QEMU whose guest never runs, once per QEMU build: the yes is
// remembered in <cache>/templates, keyed by the binary as the
// accelerator's answer is, since the probe is a QEMU start that every
// command would otherwise pay before its first VM.
func Templates(ctx context.Context) error {
	templates.Do(func() {
		templates.err = rememberTemplates(accelKey(Binary()), cache.Templates(), func() error { return probeTemplates(ctx) })
	})
	return templates.err
}

// rememberTemplates answers from the memo when it holds a yes for the
// QEMU build key, else probes and remembers a yes. A no is asked again
// by the next command: a probe may fail on a host too loaded to answer
// in time, and that must not turn templates off for good.
func rememberTemplates(key, memo string, probe func() error) error {
	yes := key + "\nyes\n"
	if b, err := os.ReadFile(memo); err == nil && key != "" && string(b) == yes {
		return nil
	}
	err := probe()
	if err == nil && key != "" {
		cache.WriteFile(memo, 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, yes)
			return err
		})
	}
	return err
}

func probeTemplates(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	p, err := Start(ctx, Config{Accel: "tcg", MemoryMiB: 16, Paused: true})
	if err != nil {
		return err
	}
	defer p.Kill()
	ret, err := p.QMP(ctx, "query-migrate-capabilities", nil)
	if err != nil {
		return err
	}
	var caps []struct {
		Capability string `json:"capability"`
	}
	if err := json.Unmarshal(ret, &caps); err != nil {
		return fmt.Errorf("query-migrate-capabilities: %w", err)
	}
	for _, c := range caps {
		if c.Capability == ignoreShared {
			return nil
		}
	}
	return fmt.Errorf("%s has no %s migration capability", Binary(), ignoreShared)
}

// incomingPoll is how often WaitIncoming looks at the run state. The
// destination gets no migration events (they need a capability that
// cannot be set before QEMU starts loading), so it polls.
const incomingPoll = 10 * time.Millisecond

// WaitIncoming waits until a QEMU started with Config.Incoming has loaded
// the snapshot. The guest is then paused; Cont runs it.
func (p *Process) WaitIncoming(ctx context.Context) error {
	tick := time.NewTicker(incomingPoll)
	defer tick.Stop()
	for {
		st, err := p.Status(ctx)
		if err != nil {
			// A failed load makes QEMU exit; report that, not the
			// lost connection.
			select {
			case <-p.done:
				return fmt.Errorf("%w: load snapshot: %w", ErrMigration, p.exitErr())
			default:
			}
			return fmt.Errorf("%w: load snapshot: %w", ErrMigration, err)
		}
		switch st {
		case "inmigrate":
		case "paused", "running":
			return nil
		default:
			msg := ""
			if info, err := p.queryMigrate(ctx); err == nil && info.ErrorDesc != "" {
				msg = ": " + info.ErrorDesc
			}
			return fmt.Errorf("%w: load snapshot: unexpected state %q%s", ErrMigration, st, msg)
		}
		select {
		case <-tick.C:
		case <-p.done:
			return fmt.Errorf("%w: load snapshot: %w", ErrMigration, p.exitErr())
		case <-ctx.Done():
			return fmt.Errorf("%w: load snapshot: %w", ErrMigration, ctx.Err())
		}
	}
}
