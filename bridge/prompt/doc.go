// Package prompt turns OpenAI-style chat messages into the single prompt string
// the AI Horde sends verbatim to a text worker, and cleans the worker's answer.
//
// # Templates
//
// A [Template] is one instruct format (ChatML, Llama-3, Mistral, Gemma, ...),
// declared as a small table of turn markers rather than code. The [Registry]
// picks one per Horde model name: operator overrides (globs) first, then the
// built-in rules, then the fallback, Alpaca (see [Registry.ForModel]).
//
// Rendering rules shared by every template:
//
//   - BOS tokens (<s>, <|begin_of_text|>, <bos>, <BOS_TOKEN>, <｜begin▁of▁sentence｜>)
//     are never written: KoboldCpp and Aphrodite add the model's BOS themselves,
//     and a second one degrades output. Markers that are not the BOS (GLM-4's
//     "[gMASK]<sop>") are written.
//   - The prompt ends with the assistant turn opener (the generation prompt).
//   - A speaker's Name is rendered only on user messages, as "Name: content"
//     inside the user turn, so the model can tell people in a group chat apart.
//     Assistant names are not rendered: the model would copy the "Name: " prefix
//     into its reply. System names are dropped. Control characters in a name
//     become spaces.
//   - Content is written verbatim (no trimming), so what the caller stored is
//     what the model sees.
//   - Consecutive system messages always merge into one turn (joined by a blank
//     line). Consecutive user or assistant messages merge the same way only in
//     templates that demand strict user/assistant alternation (Llama-2, the
//     Mistral family, Gemma, Command-R); the others render one turn per message,
//     as their Jinja templates do.
//   - Templates without a system role (Llama-2, Mistral before v7, Gemma) fold
//     the leading system messages into the first user turn (Llama-2 inside
//     <<SYS>> markers, the others followed by a blank line). A later system
//     message becomes user text, as it also does in templates whose system
//     prompt is bare text at the top (Alpaca, Vicuna, DeepSeek).
//   - A strict template given an assistant-first history gets a user turn in
//     front (holding the folded system prompt, or empty); a system-only list
//     renders the system text as the user's turn in templates without a system
//     role.
//
// # Output
//
// [Template.StopSequences] are the template's own turn markers, to send as the
// Horde's stop_sequence. The Horde returns the stop string inside the text;
// [Template.CleanOutput] cuts the text at the first stop marker (which removes a
// trailing one as an exact suffix, never as a character set like Python's
// rstrip) and trims whitespace.
//
// # Fitting
//
// [Fit] renders the newest part of a history that fits a token budget, counted
// the way the Horde counts (runes/4, see [EstimateTokens]).
package prompt
