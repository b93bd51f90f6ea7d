package apiserver

import "context"

// Cluster is what the API server needs of the Raft node.
type Cluster interface {
	// LeaderAPIURL is the base URL of the leader's API ("" if unknown).
	LeaderAPIURL() string
	Members(ctx context.Context) (MembersInfo, error)
	// Join adds a server as a voter. It is only called on the leader.
	Join(ctx context.Context, req JoinRequest) error
	// Ready reports that this server knows a leader and has caught up.
	Ready() bool
}

// JoinRequest is the body of POST /skiff/v1/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr"`
}

// MemberInfo is one control-plane server.
type MemberInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// MembersInfo is the body of GET /skiff/v1/members: the membership as the
// answering server sees it.
type MembersInfo struct {
	Members      []MemberInfo `json:"members"`
	Leader       string       `json:"leader"`
	LastIndex    uint64       `json:"lastIndex"`
	AppliedIndex uint64       `json:"appliedIndex"`
	Server       string       `json:"server"`
}
