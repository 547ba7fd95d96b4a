//go:build !linux

package netswitch

import (
	"errors"
	"os"
)

// Provium runs VMs on Linux only; elsewhere a switch has no ports.

var errWouldBlock = errors.New("socket buffer full")

type portSocket struct{}

func newPortSocket(string) (*portSocket, *os.File, error) {
	return nil, nil, errors.ErrUnsupported
}

func (*portSocket) recv([]byte) (int, error) { return 0, errors.ErrUnsupported }
func (*portSocket) send([]byte) error        { return errors.ErrUnsupported }
func (*portSocket) close() error             { return nil }
