package harness

import "testing"

func TestSharedMemoryEstimate(t *testing.T) {
	var s sharedMemory
	if got := s.estimate("f/0", 512); got != 512 {
		t.Errorf("before any measurement: %d, want the whole RAM", got)
	}
	s.learn("f/0", 40)
	s.learn("f/0", 20) // the most counts, not the last
	if got := s.estimate("f/0", 512); got != charge(40) || got >= 512 {
		t.Errorf("after measuring 40 MiB: %d, want %d", got, charge(40))
	}
	if got := s.estimate("f/1", 512); got != 512 {
		t.Errorf("another VM of the fixture: %d, want the whole RAM", got)
	}
	s.learn("g/0", 600)
	if got := s.estimate("g/0", 512); got != 512 {
		t.Errorf("measured above its RAM: %d, want it capped at 512", got)
	}
}
