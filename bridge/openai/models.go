package openai

import (
	"net/http"
	"strings"

	"github.com/hordechat/hordechat/bridge"
)

// handleModels lists the Horde text models with workers online that this
// server offers. Listing is public information, so it needs no token.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	snap := s.bridge.Models().Snapshot()
	if snap.UpdatedAt.IsZero() {
		s.writeError(w, unavailableModels())
		return
	}
	out := modelList{Object: "list", Data: []modelObject{}}
	for _, mi := range snap.Models {
		if mi.Workers == 0 || !s.policy.modelAllowed(mi.Name) {
			continue
		}
		out.Data = append(out.Data, modelObjectOf(mi, snap.UpdatedAt.Unix()))
	}
	s.writeJSON(w, http.StatusOK, out)
}

// handleModel describes one model; short and case-insensitive names
// resolve as in requests, and "default" names the current default.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.PathValue("id"))
	reg := s.bridge.Models()
	var mi bridge.ModelInfo
	var err error
	if strings.EqualFold(id, bridge.DefaultModel) {
		name, e := s.defaultAllowed()
		if e != nil {
			s.writeError(w, e)
			return
		}
		mi, err = reg.Resolve(name)
	} else {
		mi, err = reg.Resolve(id)
	}
	if err != nil {
		s.writeError(w, fromBridge(err))
		return
	}
	if !s.policy.modelAllowed(mi.Name) {
		s.writeError(w, modelNotServed(id))
		return
	}
	s.writeJSON(w, http.StatusOK, modelObjectOf(mi, reg.Snapshot().UpdatedAt.Unix()))
}

func modelObjectOf(mi bridge.ModelInfo, created int64) modelObject {
	return modelObject{
		ID: mi.Name, Object: "model", Created: created, OwnedBy: ownerOf(mi.Name),
		ContextLength: mi.MaxContextLength, MaxCompletionTokens: mi.MaxLength,
		Workers: mi.Workers, Threads: mi.Threads, QueuedTokens: mi.Queued, QueuedJobs: mi.Jobs,
		ETASeconds: int64(mi.ETA.Seconds()), TokensPerSecond: mi.TokensPerSecond,
	}
}

// ownerOf names the worker backend (koboldcpp, aphrodite) as the owner.
func ownerOf(name string) string {
	if i := strings.IndexByte(name, '/'); i > 0 {
		switch b := strings.ToLower(name[:i]); b {
		case "koboldcpp", "aphrodite", "tabbyapi", "vllm", "llamacpp":
			return "ai-horde/" + b
		}
	}
	return "ai-horde"
}

func unavailableModels() *apiError {
	return &apiError{Status: 503, Type: "server_error", Code: string(bridge.CodeUnavailable),
		Message: "The model list has not been loaded from the Horde yet. Try again in a minute."}
}
