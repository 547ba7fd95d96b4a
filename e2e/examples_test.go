package e2e

import (
	"path/filepath"
	"testing"
)

// The example suite the README starts with passes as shipped.
func TestExamples(t *testing.T) {
	env := NewEnv(t, nil)
	dir, err := filepath.Abs(filepath.Join("..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	env.Run("test", dir).MustPass(t)
}
