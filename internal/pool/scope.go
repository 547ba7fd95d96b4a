package pool

import (
	"context"
	"errors"
	"sync"
)

// errScopeEnded is returned by an Acquire whose scope has already ended: the
// file it was for is over, so nothing may be reserved for it any more.
var errScopeEnded = errors.New("pool: the test file's scope has ended")

type scopeKey struct{}

// scope collects the grants made under it.
type scope struct {
	mu     sync.Mutex
	grants map[*grant]func() // live grants and their releases
	ended  bool
}

// Scope returns a context under which every Acquire is also recorded, and a
// function that releases all of those reservations (each at most once) and
// makes later Acquires under the context fail. The runner gives each test
// file a scope, so a file that errors, times out or panics returns all it
// held even if the code that booted its VMs never got to release them.
func Scope(ctx context.Context) (context.Context, func()) {
	sc := &scope{grants: map[*grant]func(){}}
	return context.WithValue(ctx, scopeKey{}, sc), sc.end
}

// WithoutScope returns ctx without the scope Scope put in it, for work that
// must outlive the file that started it, such as a fixture build shared with
// other files.
func WithoutScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, scopeKey{}, (*scope)(nil))
}

func scopeFrom(ctx context.Context) *scope {
	sc, _ := ctx.Value(scopeKey{}).(*scope)
	return sc
}

func (s *scope) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// add records g and its release; false when the scope has already ended.
func (s *scope) add(g *grant, release func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.grants[g] = release
	g.scope = s
	return true
}

// forget drops a grant that was released.
func (s *scope) forget(g *grant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.grants, g)
}

// held is what the scope's live grants hold.
func (s *scope) held() (mem, cpus int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for g := range s.grants {
		mem += g.mem
		cpus += g.cpus
	}
	return mem, cpus
}

func (s *scope) end() {
	s.mu.Lock()
	grants := s.grants
	s.grants, s.ended = map[*grant]func(){}, true
	s.mu.Unlock()
	for _, release := range grants {
		release()
	}
}
