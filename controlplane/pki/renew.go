package pki

import (
	"crypto/x509"
	"fmt"
	"time"
)

// RenewalTime returns when cert should be renewed: once two thirds of its
// validity have passed, leaving a third (months for a one-year certificate)
// to retry a failing renewal before it expires.
func RenewalTime(cert *x509.Certificate) time.Time {
	validity := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(validity - validity/3)
}

// NeedsRenewal reports whether the certificate in certPEM has less than a
// third of its validity left at now. An expired certificate (the error
// wraps ErrExpired) or one that does not parse also needs renewal, and
// the error says why.
func NeedsRenewal(certPEM []byte, now time.Time) (bool, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return true, fmt.Errorf("pki: %w", err)
	}
	if !now.Before(cert.NotAfter) {
		return true, fmt.Errorf("pki: certificate %q expired at %v: %w", cert.Subject.CommonName, cert.NotAfter, ErrExpired)
	}
	return !now.Before(RenewalTime(cert)), nil
}
