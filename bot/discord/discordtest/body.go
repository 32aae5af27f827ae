package discordtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// upload is one file part of a multipart request.
type upload struct {
	index       int
	filename    string
	contentType string
	data        []byte
}

// fields is a JSON object decoded lazily, so that an absent key, null and a
// value can be told apart, and type errors are reported per field.
type fields struct {
	m    map[string]json.RawMessage
	errs []fieldError
}

func (f *fields) has(k string) bool { _, ok := f.m[k]; return ok }

func (f *fields) isNull(k string) bool {
	v, ok := f.m[k]
	return ok && bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// get decodes key k into v; absent or null leaves v alone and reports false.
func (f *fields) get(k string, v any) bool {
	raw, ok := f.m[k]
	if !ok || f.isNull(k) {
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		f.errs = append(f.errs, fieldError{k, "MODEL_TYPE_CONVERT", "Could not interpret the value as the expected type."})
		return false
	}
	return true
}

var errBadJSON = errors.New("invalid JSON")

// parseBody reads a JSON body or a multipart/form-data body with a
// payload_json part and files[n] parts (also "file" and "file[n]").
func parseBody(c *call) (*fields, []upload, error) {
	ct := c.r.Header.Get("Content-Type")
	mt, params, _ := mime.ParseMediaType(ct)
	payload := c.body
	var ups []upload
	if mt == "multipart/form-data" {
		payload = nil
		mr := multipart.NewReader(bytes.NewReader(c.body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, nil, errBadJSON
			}
			data, err := io.ReadAll(p)
			if err != nil {
				return nil, nil, errBadJSON
			}
			name := p.FormName()
			switch {
			case name == "payload_json":
				payload = data
			case name == "file" || strings.HasPrefix(name, "files[") || strings.HasPrefix(name, "file["):
				idx := len(ups)
				if i := strings.IndexByte(name, '['); i >= 0 {
					if n, err := strconv.Atoi(strings.TrimSuffix(name[i+1:], "]")); err == nil {
						idx = n
					}
				}
				pct := p.Header.Get("Content-Type")
				if pct == "" {
					pct = http.DetectContentType(data)
				}
				ups = append(ups, upload{index: idx, filename: p.FileName(), contentType: pct, data: data})
			default:
				// Discord also accepts form fields like "content"; record them as JSON strings.
				if payload == nil {
					payload = []byte("{}")
				}
				var m map[string]any
				_ = json.Unmarshal(payload, &m)
				if m == nil {
					m = map[string]any{}
				}
				m[name] = string(data)
				payload, _ = json.Marshal(m)
			}
		}
	}
	f := &fields{m: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(payload)) == 0 {
		return f, ups, nil
	}
	if err := json.Unmarshal(payload, &f.m); err != nil {
		return nil, nil, errBadJSON
	}
	return f, ups, nil
}

func errInvalidJSON() reply {
	return apiError(http.StatusBadRequest, codeInvalidJSON, "The request body contains invalid JSON.")
}

// decodeComponents turns raw components into discordgo's types, checking
// Discord's layout rules for action rows and buttons.
func decodeComponents(path string, raws []json.RawMessage) ([]discordgo.MessageComponent, []fieldError) {
	var errs []fieldError
	out := make([]discordgo.MessageComponent, 0, len(raws))
	if len(raws) > 5 {
		errs = append(errs, maxLengthError(path, 5))
	}
	seen := map[string]bool{}
	for i, raw := range raws {
		p := fmt.Sprintf("%s.%d", path, i)
		c, err := discordgo.MessageComponentFromJSON(raw)
		if err != nil {
			errs = append(errs, fieldError{p + ".type", "UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 17)."})
			continue
		}
		out = append(out, c)
		row, ok := c.(*discordgo.ActionsRow)
		if !ok {
			continue
		}
		if len(row.Components) == 0 {
			errs = append(errs, fieldError{p + ".components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."})
		}
		if len(row.Components) > 5 {
			errs = append(errs, maxLengthError(p+".components", 5))
		}
		for j, inner := range row.Components {
			ip := fmt.Sprintf("%s.components.%d", p, j)
			var id string
			switch v := inner.(type) {
			case *discordgo.Button:
				id = v.CustomID
				if utf8.RuneCountInString(v.Label) > 80 {
					errs = append(errs, maxLengthError(ip+".label", 80))
				}
				if v.Style == discordgo.LinkButton {
					if v.URL == "" {
						errs = append(errs, requiredError(ip+".url"))
					}
					if v.CustomID != "" {
						errs = append(errs, fieldError{ip + ".custom_id", "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED", "A custom id is not allowed for link buttons."})
					}
					continue
				}
				if v.CustomID == "" && v.Style != discordgo.PremiumButton {
					errs = append(errs, fieldError{ip + ".custom_id", "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED", "A custom id is required for non-link buttons."})
				}
			case *discordgo.SelectMenu:
				id = v.CustomID
				if id == "" {
					errs = append(errs, requiredError(ip+".custom_id"))
				}
			case *discordgo.TextInput:
				id = v.CustomID
				if id == "" {
					errs = append(errs, requiredError(ip+".custom_id"))
				}
			}
			if utf8.RuneCountInString(id) > 100 {
				errs = append(errs, maxLengthError(ip+".custom_id", 100))
			}
			if id != "" {
				if seen[id] {
					errs = append(errs, fieldError{ip + ".custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"})
				}
				seen[id] = true
			}
		}
	}
	return out, errs
}

// checkEmbeds applies Discord's embed limits.
func checkEmbeds(path string, embeds []*discordgo.MessageEmbed) []fieldError {
	var errs []fieldError
	if len(embeds) > 10 {
		errs = append(errs, maxLengthError(path, 10))
	}
	total := 0
	lim := func(p, v string, n int) {
		l := utf8.RuneCountInString(v)
		total += l
		if l > n {
			errs = append(errs, maxLengthError(p, n))
		}
	}
	for i, e := range embeds {
		if e == nil {
			continue
		}
		p := fmt.Sprintf("%s.%d", path, i)
		lim(p+".title", e.Title, 256)
		lim(p+".description", e.Description, 4096)
		if e.Footer != nil {
			lim(p+".footer.text", e.Footer.Text, 2048)
		}
		if e.Author != nil {
			lim(p+".author.name", e.Author.Name, 256)
		}
		if len(e.Fields) > 25 {
			errs = append(errs, maxLengthError(p+".fields", 25))
		}
		for j, fl := range e.Fields {
			if fl == nil {
				continue
			}
			lim(fmt.Sprintf("%s.fields.%d.name", p, j), fl.Name, 256)
			lim(fmt.Sprintf("%s.fields.%d.value", p, j), fl.Value, 1024)
		}
	}
	if total > 6000 {
		errs = append(errs, fieldError{path, "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"})
	}
	return errs
}

var (
	userMentionRE = regexp.MustCompile(`<@!?(\d+)>`)
	roleMentionRE = regexp.MustCompile(`<@&(\d+)>`)
)

// mentionsLocked resolves the mentions of content as Discord does, filtered
// by allowed_mentions (nil means every kind is allowed). repliedTo is the
// author of the message replied to, if any.
func (s *Server) mentionsLocked(content string, am *discordgo.MessageAllowedMentions, guildID string, repliedTo *discordgo.User) (users []*discordgo.User, roles []string, everyone bool) {
	parse := map[discordgo.AllowedMentionType]bool{
		discordgo.AllowedMentionTypeUsers: true, discordgo.AllowedMentionTypeRoles: true, discordgo.AllowedMentionTypeEveryone: true,
	}
	var allowUsers, allowRoles map[string]bool
	repliedUser := true
	if am != nil {
		parse = map[discordgo.AllowedMentionType]bool{}
		for _, p := range am.Parse {
			parse[p] = true
		}
		allowUsers, allowRoles = map[string]bool{}, map[string]bool{}
		for _, u := range am.Users {
			allowUsers[u] = true
		}
		for _, r := range am.Roles {
			allowRoles[r] = true
		}
		repliedUser = am.RepliedUser
	}
	users = []*discordgo.User{}
	roles = []string{}
	seen := map[string]bool{}
	addUser := func(id string) {
		if u, ok := s.users[id]; ok && !seen[id] {
			seen[id] = true
			users = append(users, deepCopy(u))
		}
	}
	for _, m := range userMentionRE.FindAllStringSubmatch(content, -1) {
		if parse[discordgo.AllowedMentionTypeUsers] || allowUsers[m[1]] {
			addUser(m[1])
		}
	}
	if repliedTo != nil && repliedUser {
		addUser(repliedTo.ID)
	}
	if gl, ok := s.guilds[guildID]; ok {
		seenRole := map[string]bool{}
		for _, m := range roleMentionRE.FindAllStringSubmatch(content, -1) {
			if seenRole[m[1]] || !(parse[discordgo.AllowedMentionTypeRoles] || allowRoles[m[1]]) {
				continue
			}
			for _, r := range gl.roles {
				if r.ID == m[1] {
					seenRole[m[1]] = true
					roles = append(roles, r.ID)
				}
			}
		}
	}
	everyone = parse[discordgo.AllowedMentionTypeEveryone] &&
		(strings.Contains(content, "@everyone") || strings.Contains(content, "@here"))
	return users, roles, everyone
}

// checkAllowedMentions applies Discord's rules for allowed_mentions.
func checkAllowedMentions(am *discordgo.MessageAllowedMentions) []fieldError {
	if am == nil {
		return nil
	}
	var errs []fieldError
	has := func(t discordgo.AllowedMentionType) bool {
		for _, p := range am.Parse {
			if p == t {
				return true
			}
		}
		return false
	}
	for i, p := range am.Parse {
		if p != discordgo.AllowedMentionTypeUsers && p != discordgo.AllowedMentionTypeRoles && p != discordgo.AllowedMentionTypeEveryone {
			errs = append(errs, fieldError{fmt.Sprintf("allowed_mentions.parse.%d", i), "BASE_TYPE_CHOICES", "Value must be one of {'roles', 'users', 'everyone'}."})
		}
	}
	if has(discordgo.AllowedMentionTypeUsers) && len(am.Users) > 0 {
		errs = append(errs, fieldError{"allowed_mentions", "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE", `parse:["users"] and users: [ids] are mutually exclusive.`})
	}
	if has(discordgo.AllowedMentionTypeRoles) && len(am.Roles) > 0 {
		errs = append(errs, fieldError{"allowed_mentions", "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE", `parse:["roles"] and roles: [ids] are mutually exclusive.`})
	}
	if len(am.Users) > 100 {
		errs = append(errs, maxLengthError("allowed_mentions.users", 100))
	}
	return errs
}
