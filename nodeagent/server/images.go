package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Image is an image in the answers of /images (client.NodeImage on the
// other side).
type Image struct {
	Ref  string `json:"ref"`
	ID   string `json:"id"`
	Size int64  `json:"size,omitempty"`
}

// importImages answers POST /images: the body is an OCI layout or
// docker-save tarball, imported whole or not at all.
func (s *Server) importImages(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Images == nil {
		writeError(w, http.StatusNotFound, "image import is not supported by this node's runtime")
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxImageBytes)
	imgs, err := s.cfg.Images.ImportImages(r.Context(), body)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("image archive larger than %d bytes: nothing imported", tooBig.Limit))
		case r.Context().Err() != nil:
			// The client left; nobody to answer.
		default:
			// The runtime refuses an archive it cannot read; it imported
			// nothing.
			writeError(w, http.StatusBadRequest, fmt.Sprintf("import images: %v (nothing imported)", err))
		}
		return
	}
	out := make([]Image, 0, len(imgs))
	for _, i := range imgs {
		out = append(out, Image{Ref: i.Ref, ID: string(i.ID)})
	}
	s.log.Info("imported images", "images", len(out))
	writeJSON(w, out)
}

// listImages answers GET /images.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Images == nil {
		writeError(w, http.StatusNotFound, "image listing is not supported by this node's runtime")
		return
	}
	imgs, err := s.cfg.Images.ListImages(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("list images: %v", err))
		return
	}
	out := make([]Image, 0, len(imgs))
	for _, i := range imgs {
		out = append(out, Image{Ref: i.Ref, ID: string(i.ID), Size: i.Size})
	}
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
