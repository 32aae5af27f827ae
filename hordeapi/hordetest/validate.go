package hordetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// The submit body is checked the way Flask-RESTX does with validate=True:
// jsonschema Draft 4 over the GenerationInputKobold model. Errors are keyed
// by the dotted path of the offending value and worded like jsonschema.

// kind is a JSON schema type.
type kind int

const (
	kString kind = iota
	kInteger
	kNumber
	kBool
	kObject
	kStringList
	kIntegerList
	kObjectList
)

// field is the schema of one property.
type field struct {
	kind      kind
	min, max  *float64
	minLength int
}

func bounds(lo, hi float64) (*float64, *float64) { return &lo, &hi }

func num(k kind, lo, hi float64) field {
	f := field{kind: k}
	f.min, f.max = bounds(lo, hi)
	return f
}

// topSchema is GenerationInputKobold plus the generate parser's fields.
var topSchema = map[string]field{
	"prompt":              {kind: kString},
	"params":              {kind: kObject},
	"softprompt":          {kind: kString, minLength: 1},
	"trusted_workers":     {kind: kBool},
	"validated_backends":  {kind: kBool},
	"slow_workers":        {kind: kBool},
	"extra_slow_workers":  {kind: kBool},
	"workers":             {kind: kStringList},
	"worker_blacklist":    {kind: kBool},
	"models":              {kind: kStringList},
	"dry_run":             {kind: kBool},
	"proxied_account":     {kind: kString},
	"disable_batching":    {kind: kBool},
	"allow_downgrade":     {kind: kBool},
	"webhook":             {kind: kString},
	"style":               {kind: kString},
	"extra_source_images": {kind: kObjectList},
	"nsfw":                {kind: kBool},
}

// paramsSchema is ModelGenerationInputKobold (horde-api.md §1.1). Keys not
// listed pass through unchecked, as they do on the real Horde.
var paramsSchema = map[string]field{
	"n":                       num(kInteger, 1, 20),
	"max_context_length":      num(kInteger, 80, 1048576),
	"max_length":              num(kInteger, 16, 4096),
	"temperature":             num(kNumber, 0, 5),
	"top_p":                   num(kNumber, 0.001, 1),
	"top_k":                   num(kInteger, 0, 200),
	"top_a":                   num(kNumber, 0, 1),
	"typical":                 num(kNumber, 0, 1),
	"tfs":                     num(kNumber, 0, 1),
	"min_p":                   num(kNumber, 0, 1),
	"rep_pen":                 num(kNumber, 1, 3),
	"rep_pen_range":           num(kInteger, 0, 4096),
	"rep_pen_slope":           num(kNumber, 0, 10),
	"smoothing_factor":        num(kNumber, 0, 10),
	"dynatemp_range":          num(kNumber, 0, 5),
	"dynatemp_exponent":       num(kNumber, 0, 5),
	"sampler_order":           {kind: kIntegerList},
	"stop_sequence":           {kind: kStringList},
	"use_default_badwordsids": {kind: kBool},
	"singleline":              {kind: kBool},
	"frmtadsnsp":              {kind: kBool},
	"frmtrmblln":              {kind: kBool},
	"frmtrmspch":              {kind: kBool},
	"frmttriminc":             {kind: kBool},
}

// decodeJSON parses a body keeping numbers as json.Number, so that 2048
// and 2048.0 can be told apart like Python's json does.
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("extra data after the JSON value")
	}
	return v, nil
}

// validateSubmit returns the Flask-RESTX errors map for a submit body; an
// empty map means the body is valid.
func validateSubmit(body any) map[string]string {
	errs := map[string]string{}
	obj, ok := body.(map[string]any)
	if !ok {
		errs[""] = pyRepr(body) + " is not of type 'object'"
		return errs
	}
	if _, ok := obj["prompt"]; !ok {
		errs["prompt"] = "'prompt' is a required property"
	}
	checkObject(obj, topSchema, "", errs)
	if p, ok := obj["params"].(map[string]any); ok {
		checkObject(p, paramsSchema, "params.", errs)
	}
	return errs
}

func checkObject(obj map[string]any, schema map[string]field, prefix string, errs map[string]string) {
	for key, f := range schema {
		v, ok := obj[key]
		if !ok {
			continue
		}
		checkValue(v, f, prefix+key, errs)
	}
}

func checkValue(v any, f field, path string, errs map[string]string) {
	switch f.kind {
	case kString:
		s, ok := v.(string)
		if !ok {
			errs[path] = typeError(v, "string")
			return
		}
		if f.minLength > 0 && len([]rune(s)) < f.minLength {
			errs[path] = pyRepr(v) + " is too short"
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			errs[path] = typeError(v, "boolean")
		}
	case kObject:
		if _, ok := v.(map[string]any); !ok {
			errs[path] = typeError(v, "object")
		}
	case kInteger, kNumber:
		n, ok := v.(json.Number)
		if !ok || (f.kind == kInteger && !isIntegerLiteral(n)) {
			errs[path] = typeError(v, map[kind]string{kInteger: "integer", kNumber: "number"}[f.kind])
			return
		}
		x, err := n.Float64()
		if err != nil {
			x = math.Inf(1)
			if strings.HasPrefix(string(n), "-") {
				x = math.Inf(-1)
			}
		}
		if f.min != nil && x < *f.min {
			errs[path] = fmt.Sprintf("%s is less than the minimum of %s", n, pyNumber(*f.min))
		} else if f.max != nil && x > *f.max {
			errs[path] = fmt.Sprintf("%s is greater than the maximum of %s", n, pyNumber(*f.max))
		}
	case kStringList, kIntegerList, kObjectList:
		list, ok := v.([]any)
		if !ok {
			errs[path] = typeError(v, "array")
			return
		}
		item := map[kind]field{kStringList: {kind: kString}, kIntegerList: {kind: kInteger}, kObjectList: {kind: kObject}}[f.kind]
		for i, e := range list {
			checkValue(e, item, path+"."+strconv.Itoa(i), errs)
		}
	}
}

func typeError(v any, typ string) string {
	return fmt.Sprintf("%s is not of type '%s'", pyRepr(v), typ)
}

// isIntegerLiteral reports whether a JSON number is an integer for Draft 4:
// Python's json turns any literal with a fraction or exponent into a float.
func isIntegerLiteral(n json.Number) bool {
	return !strings.ContainsAny(string(n), ".eE")
}

// pyRepr renders a decoded JSON value the way Python's repr() would, for
// error messages.
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return string(x)
	case string:
		return pyString(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = pyString(k) + ": " + pyRepr(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	default:
		return fmt.Sprint(x)
	}
}

func pyString(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\x00", `\x00`, q, `\`+q)
	return q + r.Replace(s) + q
}

// pyNumber formats a schema bound like Python prints the literal in the
// model definition (1 rather than 1.0 for integral bounds).
func pyNumber(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// pyFloat formats a float like Python's repr (always with a fraction part).
func pyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// pyRound is Python 3's round(x): ties go to the even neighbour.
func pyRound(x float64) float64 { return math.RoundToEven(x) }

// round2 is round(x, 2).
func round2(x float64) float64 { return math.RoundToEven(x*100) / 100 }

// containsNul reports whether any string (key or value) holds a NUL.
func containsNul(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsRune(x, 0)
	case []any:
		for _, e := range x {
			if containsNul(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.ContainsRune(k, 0) || containsNul(e) {
				return true
			}
		}
	}
	return false
}

// cloneJSON deep-copies a decoded JSON object.
func cloneJSON(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&out)
	return out
}
