package train

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// LockFile is the lock a run holds on its directory (LockDir).
const LockFile = ".lock"

var (
	locksMu sync.Mutex
	locks   = map[string]*dirLock{} // by absolute directory
)

type dirLock struct {
	f     *os.File
	count int
}

// LockDir takes an exclusive lock on a run directory (creating it), so that
// two processes never write one run; the lock file holds the holder's PID,
// which the error of a second process names. Locks are re-entrant within a
// process (a command may lock the directory its training loop locks again).
// The returned function releases the lock; the operating system releases it
// when the process dies, so a killed run never leaves it held.
func LockDir(dir string) (release func(), err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	locksMu.Lock()
	defer locksMu.Unlock()
	if l, ok := locks[abs]; ok {
		l.count++
		return func() { unlock(abs) }, nil
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(abs, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b))); perr == nil {
					holder = fmt.Sprintf("process %d", pid)
				}
			}
			return nil, fmt.Errorf("%s is in use by %s (lock %s): wait for it to finish, or choose another output directory", dir, holder, path)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		_ = f.Sync()
	}
	locks[abs] = &dirLock{f: f, count: 1}
	return func() { unlock(abs) }, nil
}

func unlock(abs string) {
	locksMu.Lock()
	defer locksMu.Unlock()
	l, ok := locks[abs]
	if !ok {
		return
	}
	if l.count--; l.count > 0 {
		return
	}
	delete(locks, abs)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}
