package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// NodeImage is an image on a node (the agent's /images answers).
type NodeImage struct {
	Ref  string `json:"ref"`
	ID   string `json:"id"`
	Size int64  `json:"size,omitempty"`
}

func imagesPath(node string) string {
	return "/api/v1/nodes/" + url.PathEscape(node) + "/proxy/images"
}

// ImportImages loads an OCI layout or docker-save tarball into a node's
// runtime (POST nodes/{name}/proxy/images) and returns the images it held.
// size is the archive's length (-1: unknown). A malformed archive is a 400
// *api.Status error, with nothing imported. The answer comes once the node
// has imported everything: only ctx bounds it.
func (c *Client) ImportImages(ctx context.Context, node string, archive io.Reader, size int64) ([]NodeImage, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/x-tar")
	h.Set("Accept", "application/json")
	resp, err := c.stream(ctx, streamRequest{method: http.MethodPost, path: imagesPath(node), body: archive, contentLength: size, header: h})
	if err != nil {
		return nil, err
	}
	return decodeImages(resp, node)
}

// ListImages lists a node's images (GET nodes/{name}/proxy/images).
func (c *Client) ListImages(ctx context.Context, node string) ([]NodeImage, error) {
	h := http.Header{}
	h.Set("Accept", "application/json")
	resp, err := c.stream(ctx, streamRequest{method: http.MethodGet, path: imagesPath(node), header: h, headerTimeout: c.timeout})
	if err != nil {
		return nil, err
	}
	return decodeImages(resp, node)
}

func decodeImages(resp *http.Response, node string) ([]NodeImage, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	defer resp.Body.Close()
	var out []NodeImage
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("client: decoding the images of node %s: %w", node, err)
	}
	return out, nil
}
