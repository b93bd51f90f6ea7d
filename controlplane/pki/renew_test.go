package pki

import (
	"errors"
	"testing"
	"time"
)

func TestNeedsRenewal(t *testing.T) {
	ca := newTestCA(t, t0)
	const ttl = 90 * 24 * time.Hour
	certPEM := issueBundle(t, ca, SignRequest{Identity: NodeIdentity("a"), Usage: UsageClient, TTL: ttl}, t0).CertPEM
	c := parseCert(t, certPEM)
	validity := c.NotAfter.Sub(c.NotBefore)
	at := func(fraction float64) time.Time {
		return c.NotBefore.Add(time.Duration(float64(validity) * fraction))
	}
	tests := []struct {
		name      string
		cert      []byte
		now       time.Time
		want      bool
		wantErr   bool
		wantIsErr error
	}{
		{name: "just issued", cert: certPEM, now: t0, want: false},
		{name: "50% elapsed", cert: certPEM, now: at(0.5), want: false},
		{name: "66% elapsed", cert: certPEM, now: at(0.66), want: false},
		{name: "70% elapsed", cert: certPEM, now: at(0.7), want: true},
		{name: "one second before expiry", cert: certPEM, now: c.NotAfter.Add(-time.Second), want: true},
		{name: "expired", cert: certPEM, now: c.NotAfter, want: true, wantErr: true, wantIsErr: ErrExpired},
		{name: "long expired", cert: certPEM, now: c.NotAfter.Add(ttl), want: true, wantErr: true, wantIsErr: ErrExpired},
		{name: "unparsable", cert: []byte("not a certificate"), now: t0, want: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NeedsRenewal(tt.cert, tt.now)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("NeedsRenewal = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
			if tt.wantIsErr != nil && !errors.Is(err, tt.wantIsErr) {
				t.Errorf("error %v is not %v", err, tt.wantIsErr)
			}
		})
	}
	if want := c.NotBefore.Add(validity * 2 / 3); RenewalTime(c).Sub(want).Abs() > time.Second {
		t.Errorf("RenewalTime = %v, want %v", RenewalTime(c), want)
	}
}
