package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// LoadResult is what a load run measured.
type LoadResult struct {
	Requests, Errors int
	FirstError       string
	Seconds          float64
	PerSecond        float64
	P50, P95, P99    time.Duration
}

func (r LoadResult) String() string {
	return fmt.Sprintf("%d requests in %.1fs: %.1f req/s, latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, %d errors",
		r.Requests, r.Seconds, r.PerSecond, ms(r.P50), ms(r.P95), ms(r.P99), r.Errors)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Load sends POST requests with the given JSON bodies (in turn) to target
// from clients concurrent clients, until requests have been sent or duration
// has passed. It refuses hosts that are not loopback addresses.
func Load(ctx context.Context, target string, bodies [][]byte, clients, requests int, duration time.Duration, header http.Header) (LoadResult, error) {
	u, err := url.Parse(target)
	if err != nil {
		return LoadResult{}, err
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil {
		return LoadResult{}, err
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return LoadResult{}, fmt.Errorf("load runs against loopback addresses only, %s is %v", u.Hostname(), ip)
		}
	}
	if clients < 1 || requests < 1 || duration <= 0 || len(bodies) == 0 {
		return LoadResult{}, fmt.Errorf("need clients, requests, duration and bodies (got %d, %d, %v, %d)", clients, requests, duration, len(bodies))
	}
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	res := LoadResult{}
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(requests) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "POST", target, bytes.NewReader(bodies[i%int64(len(bodies))]))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range header {
					req.Header[k] = v
				}
				resp, err := client.Do(req)
				var msg string
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						msg = fmt.Sprintf("%d %s", resp.StatusCode, b)
					}
				} else if ctx.Err() == nil {
					msg = err.Error()
				} else {
					return // the run's time is up: not counted
				}
				d := time.Since(t0)
				mu.Lock()
				res.Requests++
				if msg != "" {
					res.Errors++
					if res.FirstError == "" {
						res.FirstError = msg
					}
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.PerSecond = float64(res.Requests-res.Errors) / res.Seconds
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	res.P50, res.P95, res.P99 = q(0.50), q(0.95), q(0.99)
	return res, nil
}
