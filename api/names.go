package api

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Name and label syntax, as in k8s.io/apimachinery/pkg/util/validation.
// Each *Errors function returns human-readable problems, empty when valid.

const (
	dns1123LabelMaxLength     = 63
	dns1123SubdomainMaxLength = 253
	dns1035LabelMaxLength     = 63
	labelValueMaxLength       = 63
	qualifiedNameMaxLength    = 63
	// TotalAnnotationSizeLimit bounds the summed size of an object's
	// annotation keys and values.
	TotalAnnotationSizeLimit = 256 * 1024
)

var (
	dns1123LabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123SubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dns1035LabelRE     = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	qualifiedNameRE    = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValueRE       = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	envVarNameRE       = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	ianaSvcNameRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	ianaLetterRE       = regexp.MustCompile(`[a-z]`)
)

func maxLenMsg(n int) string { return "must be no more than " + strconv.Itoa(n) + " characters" }

// DNS1123LabelErrors checks an RFC 1123 label (namespace names).
func DNS1123LabelErrors(s string) []string {
	var msgs []string
	if len(s) > dns1123LabelMaxLength {
		msgs = append(msgs, maxLenMsg(dns1123LabelMaxLength))
	}
	if !dns1123LabelRE.MatchString(s) {
		msgs = append(msgs, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')")
	}
	return msgs
}

// DNS1123SubdomainErrors checks an RFC 1123 subdomain (most object names).
func DNS1123SubdomainErrors(s string) []string {
	var msgs []string
	if len(s) > dns1123SubdomainMaxLength {
		msgs = append(msgs, maxLenMsg(dns1123SubdomainMaxLength))
	}
	if !dns1123SubdomainRE.MatchString(s) {
		msgs = append(msgs, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')")
	}
	return msgs
}

// DNS1035LabelErrors checks an RFC 1035 label (service names: they become
// DNS names and must start with a letter).
func DNS1035LabelErrors(s string) []string {
	var msgs []string
	if len(s) > dns1035LabelMaxLength {
		msgs = append(msgs, maxLenMsg(dns1035LabelMaxLength))
	}
	if !dns1035LabelRE.MatchString(s) {
		msgs = append(msgs, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')")
	}
	return msgs
}

// qualifiedNameErrors checks a label or annotation key: an optional DNS
// subdomain prefix and '/', then a name of at most 63 characters.
func qualifiedNameErrors(s string) []string {
	var msgs []string
	name := s
	if prefix, rest, ok := strings.Cut(s, "/"); ok {
		name = rest
		if prefix == "" {
			msgs = append(msgs, "prefix part must be non-empty")
		} else {
			for _, m := range DNS1123SubdomainErrors(prefix) {
				msgs = append(msgs, "prefix part "+m)
			}
		}
	}
	switch {
	case name == "":
		msgs = append(msgs, "name part must be non-empty")
	case len(name) > qualifiedNameMaxLength:
		msgs = append(msgs, "name part "+maxLenMsg(qualifiedNameMaxLength))
	}
	if name != "" && !qualifiedNameRE.MatchString(name) {
		msgs = append(msgs, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')")
	}
	return msgs
}

// QualifiedNameErrors checks a label or annotation key ("app",
// "app.kubernetes.io/name").
func QualifiedNameErrors(s string) []string { return qualifiedNameErrors(s) }

func labelValueErrors(v string) []string {
	var msgs []string
	if len(v) > labelValueMaxLength {
		msgs = append(msgs, maxLenMsg(labelValueMaxLength))
	}
	if !labelValueRE.MatchString(v) {
		msgs = append(msgs, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')")
	}
	return msgs
}

// LabelValueErrors checks a label value.
func LabelValueErrors(v string) []string { return labelValueErrors(v) }

// portNameErrors checks an IANA service name (container and probe port
// names).
func portNameErrors(s string) []string {
	var msgs []string
	if len(s) > 15 {
		msgs = append(msgs, maxLenMsg(15))
	}
	if !ianaSvcNameRE.MatchString(s) {
		msgs = append(msgs, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
	}
	if strings.Contains(s, "--") {
		msgs = append(msgs, "must not contain consecutive hyphens")
	}
	if !ianaLetterRE.MatchString(s) {
		msgs = append(msgs, "must contain at least one letter (a-z)")
	}
	return msgs
}

func validIP(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

func validCIDR(s string) bool {
	_, err := netip.ParsePrefix(s)
	return err == nil
}
