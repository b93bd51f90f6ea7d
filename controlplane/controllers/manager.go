package controllers

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Controller is one control loop. Run returns when ctx ends (nil) or when
// it cannot go on (an error: the manager restarts it after a pause).
type Controller interface {
	Name() string
	Run(ctx context.Context) error
}

// Run runs every controller until ctx ends (leadership lost), restarting
// one that fails, and waits for all of them to stop. Under WithMetrics,
// each controller's work queue records its syncs and depth.
func Run(ctx context.Context, log *slog.Logger, cs ...Controller) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := withName(ctx, c.Name())
			for ctx.Err() == nil {
				if err := c.Run(ctx); err != nil && ctx.Err() == nil {
					log.Warn("controller stopped; restarting", "controller", c.Name(), "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
					continue
				}
				return
			}
		}()
	}
	wg.Wait()
}
