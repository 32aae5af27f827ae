package discordtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

var commandNameRE = regexp.MustCompile(`^[-_'\p{L}\p{N}\p{Devanagari}\p{Thai}]{1,32}$`)

func checkName(path, name string, chatInput bool) []fieldError {
	if !chatInput {
		if n := utf8.RuneCountInString(name); n < 1 || n > 32 {
			return []fieldError{{path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."}}
		}
		return nil
	}
	if !commandNameRE.MatchString(name) {
		return []fieldError{{path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"}}
	}
	for _, r := range name {
		if unicode.IsUpper(r) {
			return []fieldError{{path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"}}
		}
	}
	return nil
}

func checkDescription(path, d string) []fieldError {
	if n := utf8.RuneCountInString(d); n < 1 || n > 100 {
		return []fieldError{{path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."}}
	}
	return nil
}

// validateCommand applies Discord's rules to one command definition.
func validateCommand(path string, c *discordgo.ApplicationCommand) []fieldError {
	var errs []fieldError
	p := func(f string) string { return strings.TrimPrefix(path+"."+f, ".") }
	if c.Type == 0 {
		c.Type = discordgo.ChatApplicationCommand
	}
	switch c.Type {
	case discordgo.ChatApplicationCommand:
		errs = append(errs, checkName(p("name"), c.Name, true)...)
		errs = append(errs, checkDescription(p("description"), c.Description)...)
		errs = append(errs, validateOptions(p("options"), c.Options, 0)...)
	case discordgo.UserApplicationCommand, discordgo.MessageApplicationCommand:
		errs = append(errs, checkName(p("name"), c.Name, false)...)
		if c.Description != "" {
			errs = append(errs, fieldError{p("description"), "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION", "Context menu commands cannot have description"})
		}
		if len(c.Options) > 0 {
			errs = append(errs, fieldError{p("options"), "APPLICATION_COMMAND_CONTEXT_MENU_OPTIONS", "Context menu commands cannot have options"})
		}
	default:
		errs = append(errs, fieldError{p("type"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3}."})
	}
	return errs
}

func validateOptions(path string, opts []*discordgo.ApplicationCommandOption, level int) []fieldError {
	var errs []fieldError
	if len(opts) > 25 {
		errs = append(errs, maxLengthError(path, 25))
	}
	names := map[string]bool{}
	sawOptional, sawSub, sawPlain := false, false, false
	for i, o := range opts {
		p := fmt.Sprintf("%s.%d", path, i)
		if o == nil {
			errs = append(errs, requiredError(p))
			continue
		}
		errs = append(errs, checkName(p+".name", o.Name, true)...)
		errs = append(errs, checkDescription(p+".description", o.Description)...)
		if names[o.Name] {
			errs = append(errs, fieldError{p + ".name", "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique"})
		}
		names[o.Name] = true
		if o.Type < discordgo.ApplicationCommandOptionSubCommand || o.Type > discordgo.ApplicationCommandOptionAttachment {
			errs = append(errs, fieldError{p + ".type", "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}."})
			continue
		}
		switch o.Type {
		case discordgo.ApplicationCommandOptionSubCommandGroup:
			sawSub = true
			if level > 0 {
				errs = append(errs, fieldError{p + ".type", "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Sub-command groups can only be nested in commands"})
			}
			for j, sub := range o.Options {
				if sub != nil && sub.Type != discordgo.ApplicationCommandOptionSubCommand {
					errs = append(errs, fieldError{fmt.Sprintf("%s.options.%d.type", p, j), "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Sub-command groups can only contain sub-commands"})
				}
			}
			errs = append(errs, validateOptions(p+".options", o.Options, level+1)...)
		case discordgo.ApplicationCommandOptionSubCommand:
			sawSub = true
			if level > 1 {
				errs = append(errs, fieldError{p + ".type", "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Sub-commands cannot be nested this deep"})
			}
			errs = append(errs, validateOptions(p+".options", o.Options, 2)...)
		default:
			sawPlain = true
			if o.Required && sawOptional {
				errs = append(errs, fieldError{p + ".required", "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options must be placed before non-required options"})
			}
			if !o.Required {
				sawOptional = true
			}
			if len(o.Options) > 0 {
				errs = append(errs, fieldError{p + ".options", "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Only sub-commands and groups have options"})
			}
			errs = append(errs, validateChoices(p, o)...)
		}
	}
	if sawSub && sawPlain {
		errs = append(errs, fieldError{path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Sub-command and sub-command group option types are mutually exclusive to all other types"})
	}
	return errs
}

func validateChoices(p string, o *discordgo.ApplicationCommandOption) []fieldError {
	var errs []fieldError
	if len(o.Choices) == 0 {
		return nil
	}
	if o.Autocomplete {
		errs = append(errs, fieldError{p + ".autocomplete", "APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES", "Autocomplete cannot be set with choices"})
	}
	switch o.Type {
	case discordgo.ApplicationCommandOptionString, discordgo.ApplicationCommandOptionInteger, discordgo.ApplicationCommandOptionNumber:
	default:
		errs = append(errs, fieldError{p + ".choices", "APPLICATION_COMMAND_OPTION_CHOICES_TYPE", "Choices are only allowed for string, integer and number options"})
	}
	if len(o.Choices) > 25 {
		errs = append(errs, maxLengthError(p+".choices", 25))
	}
	for j, ch := range o.Choices {
		cp := fmt.Sprintf("%s.choices.%d", p, j)
		if ch == nil {
			errs = append(errs, requiredError(cp))
			continue
		}
		if n := utf8.RuneCountInString(ch.Name); n < 1 || n > 100 {
			errs = append(errs, fieldError{cp + ".name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."})
		}
		switch v := ch.Value.(type) {
		case string:
			if o.Type != discordgo.ApplicationCommandOptionString {
				errs = append(errs, fieldError{cp + ".value", "NUMBER_TYPE_COERCE", "Value is not a number."})
			} else if utf8.RuneCountInString(v) > 100 {
				errs = append(errs, maxLengthError(cp+".value", 100))
			}
		case float64:
			if o.Type == discordgo.ApplicationCommandOptionString {
				errs = append(errs, fieldError{cp + ".value", "BASE_TYPE_STRING", "Could not interpret the value as string."})
			} else if o.Type == discordgo.ApplicationCommandOptionInteger && v != float64(int64(v)) {
				errs = append(errs, fieldError{cp + ".value", "NUMBER_TYPE_COERCE", "Value is not int."})
			}
		default:
			errs = append(errs, requiredError(cp+".value"))
		}
	}
	return errs
}

// commandScopeLocked checks {app} and {guild}; scope is "" for global.
func (s *Server) commandScopeLocked(c *call) (string, *reply) {
	if c.p["app"] != s.opts.ApplicationID {
		r := apiError(http.StatusForbidden, codeMissingAccess, "Missing Access")
		return "", &r
	}
	g := c.p["guild"]
	if g != "" {
		if _, ok := s.guilds[g]; !ok {
			r := apiError(http.StatusForbidden, codeMissingAccess, "Missing Access")
			return "", &r
		}
	}
	return g, nil
}

// storeCommandLocked assigns the id (stable per scope, type and name) and
// the version (new when the definition changed).
func (s *Server) storeCommandLocked(scope string, c *discordgo.ApplicationCommand, prev []*discordgo.ApplicationCommand) *discordgo.ApplicationCommand {
	key := scope + "\x00" + fmt.Sprint(c.Type) + "\x00" + c.Name
	id, ok := s.commandIDs[key]
	if !ok {
		id = s.newIDLocked()
		s.commandIDs[key] = id
	}
	c.ID, c.ApplicationID, c.GuildID = id, s.opts.ApplicationID, scope
	c.Version = ""
	for _, p := range prev {
		if p.ID == id {
			old := *p
			old.Version = ""
			if mustJSON(&old) == mustJSON(c) {
				c.Version = p.Version
			}
		}
	}
	if c.Version == "" {
		c.Version = s.newIDLocked()
	}
	return c
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// PUT /applications/{app}/commands and /applications/{app}/guilds/{guild}/commands:
// replace every command of the scope.
func (s *Server) handleBulkCommands(c *call) reply {
	scope, errr := s.commandScopeLocked(c)
	if errr != nil {
		return *errr
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(c.body, &raws); err != nil {
		if json.Valid(c.body) {
			return formError(fieldError{"", "BASE_TYPE_ARRAY", "Must be an array."})
		}
		return errInvalidJSON()
	}
	var errs []fieldError
	cmds := make([]*discordgo.ApplicationCommand, 0, len(raws))
	seen := map[string]bool{}
	chat := 0
	for i, raw := range raws {
		var cmd discordgo.ApplicationCommand
		if err := json.Unmarshal(raw, &cmd); err != nil {
			errs = append(errs, fieldError{fmt.Sprint(i), "MODEL_TYPE_CONVERT", "Could not interpret the value as an application command."})
			continue
		}
		errs = append(errs, validateCommand(fmt.Sprint(i), &cmd)...)
		k := fmt.Sprint(cmd.Type) + "\x00" + cmd.Name
		if seen[k] {
			errs = append(errs, fieldError{fmt.Sprint(i) + ".name", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique"})
		}
		seen[k] = true
		if cmd.Type == discordgo.ChatApplicationCommand {
			chat++
		}
		cmds = append(cmds, &cmd)
	}
	if chat > 100 {
		errs = append(errs, maxLengthError("", 100))
	}
	if len(errs) > 0 {
		return formError(errs...)
	}
	prev := s.commands[scope]
	for _, cmd := range cmds {
		s.storeCommandLocked(scope, cmd, prev)
	}
	s.commands[scope] = cmds
	s.notifyLocked()
	return jsonReply(http.StatusOK, cmds)
}

// POST /applications/{app}[/guilds/{guild}]/commands: create or update one.
func (s *Server) handleCreateCommand(c *call) reply {
	scope, errr := s.commandScopeLocked(c)
	if errr != nil {
		return *errr
	}
	var cmd discordgo.ApplicationCommand
	if err := json.Unmarshal(c.body, &cmd); err != nil {
		return errInvalidJSON()
	}
	if errs := validateCommand("", &cmd); len(errs) > 0 {
		return formError(errs...)
	}
	prev := s.commands[scope]
	stored := s.storeCommandLocked(scope, &cmd, prev)
	status := http.StatusCreated
	list := make([]*discordgo.ApplicationCommand, 0, len(prev)+1)
	for _, p := range prev {
		if p.ID == stored.ID {
			status = http.StatusOK
			continue
		}
		list = append(list, p)
	}
	s.commands[scope] = append(list, stored)
	s.notifyLocked()
	return jsonReply(status, stored)
}

// GET /applications/{app}[/guilds/{guild}]/commands
func (s *Server) handleGetCommands(c *call) reply {
	scope, errr := s.commandScopeLocked(c)
	if errr != nil {
		return *errr
	}
	out := s.commands[scope]
	if out == nil {
		out = []*discordgo.ApplicationCommand{}
	}
	return jsonReply(http.StatusOK, out)
}

func (s *Server) findCommandLocked(c *call) (string, int, *reply) {
	scope, errr := s.commandScopeLocked(c)
	if errr != nil {
		return "", 0, errr
	}
	for i, cmd := range s.commands[scope] {
		if cmd.ID == c.p["command"] {
			return scope, i, nil
		}
	}
	r := errUnknown(codeUnknownCommand, "application command")
	return "", 0, &r
}

// GET /applications/{app}[/guilds/{guild}]/commands/{command}
func (s *Server) handleGetCommand(c *call) reply {
	scope, i, errr := s.findCommandLocked(c)
	if errr != nil {
		return *errr
	}
	return jsonReply(http.StatusOK, s.commands[scope][i])
}

// DELETE /applications/{app}[/guilds/{guild}]/commands/{command}
func (s *Server) handleDeleteCommand(c *call) reply {
	scope, i, errr := s.findCommandLocked(c)
	if errr != nil {
		return *errr
	}
	list := s.commands[scope]
	s.commands[scope] = append(list[:i:i], list[i+1:]...)
	s.notifyLocked()
	return noContent()
}

// Commands returns the registered commands of a guild, or the global ones
// when guildID is empty.
func (s *Server) Commands(guildID string) []*discordgo.ApplicationCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*discordgo.ApplicationCommand, 0, len(s.commands[guildID]))
	for _, c := range s.commands[guildID] {
		out = append(out, deepCopy(c))
	}
	return out
}

// lookupCommandLocked finds the command a user can invoke by name in a
// channel: the guild's own first, then the global one.
func (s *Server) lookupCommandLocked(guildID, name string, typ discordgo.ApplicationCommandType) *discordgo.ApplicationCommand {
	scopes := []string{""}
	if guildID != "" {
		scopes = []string{guildID, ""}
	}
	for _, scope := range scopes {
		for _, c := range s.commands[scope] {
			if c.Name == name && c.Type == typ {
				return c
			}
		}
	}
	return nil
}
