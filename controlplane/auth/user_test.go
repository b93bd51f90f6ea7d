package auth

import "testing"

func TestNodeName(t *testing.T) {
	tests := []struct {
		name string
		user User
		want string
		ok   bool
	}{
		{"node", nodeUser("a"), "a", true},
		{"node name with dots", nodeUser("worker-1.example.com"), "worker-1.example.com", true},
		{"not in system:nodes", User{Name: "system:node:a"}, "", false},
		{"empty node name", User{Name: "system:node:", Groups: []string{GroupNodes}}, "", false},
		{"wrong prefix", User{Name: "node:a", Groups: []string{GroupNodes}}, "", false},
		{"admin", adminCert(), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NodeName(tt.user)
			if got != tt.want || ok != tt.ok {
				t.Errorf("NodeName = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestIdentityPredicates(t *testing.T) {
	tests := []struct {
		name          string
		user          User
		server, admin bool
		prio          PriorityClass
	}{
		{"server", serverCert(), true, false, PrioritySystem},
		{"admin cert", adminCert(), false, true, PrioritySystem}, // exempt, like Kubernetes' system:masters
		{"admin token", tokenUser(RoleAdmin, ""), false, true, PriorityNormal},
		{"namespaced admin token", tokenUser(RoleAdmin, "team-a"), false, false, PriorityNormal},
		{"edit token", tokenUser(RoleEdit, ""), false, false, PriorityNormal},
		{"node", nodeUser("a"), false, false, PrioritySystem},
		{"node name without group", User{Name: "system:node:a"}, false, false, PriorityNormal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsServer(tt.user); got != tt.server {
				t.Errorf("IsServer = %v, want %v", got, tt.server)
			}
			if got := IsAdmin(tt.user); got != tt.admin {
				t.Errorf("IsAdmin = %v, want %v", got, tt.admin)
			}
			if got := Priority(tt.user); got != tt.prio {
				t.Errorf("Priority = %v, want %v", got, tt.prio)
			}
		})
	}
}

func TestRoleValid(t *testing.T) {
	for _, r := range []Role{RoleAdmin, RoleEdit, RoleView} {
		if !r.Valid() {
			t.Errorf("%q.Valid() = false", r)
		}
	}
	for _, r := range []Role{"", "Admin", "root"} {
		if r.Valid() {
			t.Errorf("%q.Valid() = true", r)
		}
	}
}
