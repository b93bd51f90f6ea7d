package raft

import (
	"os"
	"testing"

	"github.com/skiffhq/skiff/test/e2e/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
