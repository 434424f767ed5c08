#include "pipeline/log_redaction.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <functional>

namespace nodewarden {
namespace {

// The built-ins, in the order they run (an earlier one's marker is never matched by a later one:
// markers hold no '=', no "eyJ", no "://").
enum Builtin : std::uint8_t {
  kPrivateKey,
  kAwsSecretAccessKey,
  kSecretPair,
  kUrlCredentials,
  kBasicAuth,
  kBearerToken,
  kJwt,
  kAwsAccessKeyId,
  kBuiltins
};
constexpr std::uint32_t bit(Builtin b) { return 1U << b; }

constexpr BuiltinRedaction kBuiltinRedactions[kBuiltins] = {
    {"private_key", "PEM private key blocks, BEGIN to END (one entry, or the lines after BEGIN)"},
    {"aws_secret_access_key", "the value after aws_secret_access_key= or : (any case)"},
    {"secret_pair",
     "the value of a key ending in password, passwd, secret, token, credential(s), api_key, "
     "secret_key, private_key or fernet_key (= or :)"},
    {"url_credentials", "the password in scheme://user:password@host, jdbc:oracle:thin:user/pw@"},
    {"basic_auth", "the credentials after Authorization: Basic"},
    {"bearer_token",
     "the token after Authorization: Bearer, or a token-like word after Bearer or BEARER"},
    {"jwt", "JSON Web Tokens: eyJ<header>.eyJ<payload>.<signature>"},
    {"aws_access_key_id", "AWS access key ids: AKIA or ASIA and 16 capitals or digits"},
};

// Keys whose value is a secret (secret_pair), case-insensitive; the prefilter's keyEnd() must let
// every one of them through.
constexpr std::string_view kPairValue =
    R"re((?:\\?["'])?(?:[ \t]*=|[ \t]+=[ \t]+|[ \t]*:\s*)(?:\\"((?:[^"\\]|\\[^"])*)\\"|"((?:[^"\\]|\\.)*)"|'([^'\\]*)'|)re"
    R"re(([^\s"'\\&;,<>(){}\[\]=:][^\s"'\\&;,<>(){}\[\]]*)))re";

std::string pairPattern(std::string_view key) {
  return "(?i)" + std::string(key) + std::string(kPairValue);
}

constexpr std::string_view kSecretPairKeyPattern =
    R"re((?:^|[^A-Za-z0-9_./\-])[A-Za-z0-9_.\-]*(?:password|passwd|secret|token|credentials?|)re"
    R"re((?:api|secret|private|fernet)[_.\-]?key))re";
constexpr std::string_view kAwsSecretKeyPattern = R"re(secret[_.\-]?access[_.\-]?key)re";

constexpr std::string_view kUrlCredentialsPattern =
    R"re((?i)[a-z][a-z0-9+.\-]*://[^\s:/?#@"'<>]*:([^\s/?#"'<>]+)@|)re"
    R"re(jdbc:oracle:[a-z0-9]+:[^\s/@:"']*/([^\s@"']+)@)re";
constexpr std::string_view kBasicAuthPattern =
    R"re((?i)authorization(?:\\?["'])?[ \t]*[:=]\s*(?:\\?["'])?\[?basic\s+([A-Za-z0-9+/=._~\-]+))re";
constexpr std::string_view kBearerTokenPattern =
    R"re((?i)authorization(?:\\?["'])?[ \t]*[:=]\s*(?:\\?["'])?\[?bearer\s+([A-Za-z0-9._~+/\-]+=*)|)re"
    R"re((?:^|[^A-Za-z0-9_])(?-i:Bearer|BEARER)\s+([A-Za-z0-9._~+/\-]+=*))re";
constexpr std::string_view kJwtPattern =
    R"re(eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*)re";
constexpr std::string_view kAwsAccessKeyIdPattern = R"re((?:AKIA|ASIA)[A-Z0-9]{16})re";

bool isAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
bool endsWithCi(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  const std::string_view tail = s.substr(s.size() - suffix.size());
  for (std::size_t i = 0; i < suffix.size(); ++i) {
    if (lower(tail[i]) != suffix[i]) return false;
  }
  return true;
}

// An access key id stands alone: no letter or digit right before or after it.
bool standsAlone(std::string_view text, std::size_t begin, std::size_t end, int /*group*/) {
  return (begin == 0 || !isAlnum(text[begin - 1])) && (end == text.size() || !isAlnum(text[end]));
}

// "Bearer <word>" outside an Authorization header (group 2): a token, not prose ("bearer token
// expired", "Bearer authentication failed"): 16 characters or more, with a digit, a capital after
// the first character or a token character.
bool tokenLike(std::string_view text, std::size_t begin, std::size_t end, int group) {
  if (group == 1) return true;
  if (end - begin < 16) return false;
  for (std::size_t i = begin; i < end; ++i) {
    const char c = text[i];
    if ((c >= '0' && c <= '9') || (i > begin && c >= 'A' && c <= 'Z') ||
        std::string_view("._~+/=").find(c) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

// ---- the prefilter ---------------------------------------------------------------------------

// The key that ends at `end` (a separator follows, after spaces and a closing quote): which rules
// may find a secret after it. Must let through every key the patterns above accept.
// Bytes that may end a key, or stand between a key and its separator (case-folded letters that
// end a listed key, quotes, blanks, a backslash before a quote): most separators (a time's ':',
// a JSON key's closing quote aside) are ruled out by their neighbour alone.
constexpr std::array<bool, 256> kKeyEndBytes = [] {
  std::array<bool, 256> t{};
  for (const char c : std::string_view("dtnyslDTNYSL\"' \t"))
    t[static_cast<unsigned char>(c)] = true;
  return t;
}();

std::uint32_t keyEnd(std::string_view s, std::size_t end) {
  if (end == 0 || !kKeyEndBytes[static_cast<unsigned char>(s[end - 1])]) return 0;
  std::size_t j = end;
  while (j > 0 && (s[j - 1] == ' ' || s[j - 1] == '\t')) --j;
  if (j > 0 && (s[j - 1] == '"' || s[j - 1] == '\'')) {
    --j;
    if (j > 0 && s[j - 1] == '\\') --j;
  }
  const std::string_view key = s.substr(0, j);
  if (key.empty()) return 0;
  switch (lower(key.back())) {
    case 'd':
      return endsWithCi(key, "password") || endsWithCi(key, "passwd") ? bit(kSecretPair) : 0;
    case 't':
      return endsWithCi(key, "secret") ? bit(kSecretPair) : 0;
    case 'n':
      if (endsWithCi(key, "token")) return bit(kSecretPair);
      return endsWithCi(key, "authorization") ? bit(kBasicAuth) | bit(kBearerToken) : 0;
    case 's':
      return endsWithCi(key, "credentials") ? bit(kSecretPair) : 0;
    case 'l':
      return endsWithCi(key, "credential") ? bit(kSecretPair) : 0;
    case 'y': {
      if (!endsWithCi(key, "key")) return 0;
      std::string_view head = key.substr(0, key.size() - 3);
      if (!head.empty() && (head.back() == '_' || head.back() == '.' || head.back() == '-')) {
        head.remove_suffix(1);
      }
      if (endsWithCi(head, "access")) return bit(kAwsSecretAccessKey);
      return endsWithCi(head, "api") || endsWithCi(head, "secret") || endsWithCi(head, "private") ||
                     endsWithCi(head, "fernet")
                 ? bit(kSecretPair)
                 : 0;
    }
    default:
      return 0;
  }
}

bool urlDelimiter(char c) {
  // RE2's \s is [\t\n\f\r ] (no \v): the same set as the pattern's password class.
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '/' || c == '?' ||
         c == '#' || c == '"' || c == '\'' || c == '<' || c == '>';
}

// At "://": a ':' and then an '@' before the authority ends.
bool urlHasPassword(std::string_view s, std::size_t from) {
  bool colon = false;
  for (std::size_t q = from; q < s.size(); ++q) {
    const char c = s[q];
    if (c == ':') {
      colon = true;
    } else if (c == '@') {
      if (colon) return true;
    } else if (urlDelimiter(c)) {
      return false;
    }
  }
  return false;
}

inline std::uint32_t atTrigger(std::string_view s, std::size_t k) {
  const std::size_t n = s.size();
  switch (s[k]) {
    case ':': {
      // A ':' may be both a URL's and a key's ("password://..." is a pair too).
      std::uint32_t bits = keyEnd(s, k);
      if (k + 2 < n && s[k + 1] == '/' && s[k + 2] == '/' && urlHasPassword(s, k + 3)) {
        bits |= bit(kUrlCredentials);
      }
      if (k >= 6 && endsWithCi(s.substr(k - 6, 6), "oracle")) bits |= bit(kUrlCredentials);
      return bits;
    }
    case '=':
      return keyEnd(s, k);
    case 'J':
      return k >= 2 && s[k - 1] == 'y' && s[k - 2] == 'e' ? bit(kJwt) : 0;
    case 'I':
      return k >= 2 && k + 1 < n && s[k + 1] == 'A' && s[k - 2] == 'A' &&
                     (s[k - 1] == 'K' || s[k - 1] == 'S')
                 ? bit(kAwsAccessKeyId)
                 : 0;
    case 'B':
      if (k >= 5 && s.substr(k - 5, 11) == "-----BEGIN ") return bit(kPrivateKey);
      return k + 6 < n && (s.substr(k, 6) == "Bearer" || s.substr(k, 6) == "BEARER") &&
                     (s[k + 6] == ' ' || s[k + 6] == '\t' || s[k + 6] == '\n' || s[k + 6] == '\r' ||
                      s[k + 6] == '\f')
                 ? bit(kBearerToken)
                 : 0;
    default:
      return 0;
  }
}

using Bytes16 = unsigned char __attribute__((vector_size(16)));

}  // namespace

std::span<const BuiltinRedaction> builtinRedactions() { return kBuiltinRedactions; }

std::vector<std::string> builtinRedactionNames() {
  std::vector<std::string> names;
  for (const auto& b : kBuiltinRedactions) names.emplace_back(b.name);
  return names;
}

// One pass over the line, sixteen bytes at a time: most blocks hold none of the trigger bytes and
// cost a few vector compares; at a trigger byte, a few scalar compares decide.
std::uint32_t LineRedactor::prefilter(std::string_view s) {
  std::uint32_t bits = 0;
  const std::size_t n = s.size();
  std::size_t i = 0;
  const Bytes16 colon = Bytes16{} + ':';
  const Bytes16 equals = Bytes16{} + '=';
  const Bytes16 capital_j = Bytes16{} + 'J';
  const Bytes16 capital_i = Bytes16{} + 'I';
  const Bytes16 capital_b = Bytes16{} + 'B';
  for (; i + 16 <= n; i += 16) {
    Bytes16 v;
    std::memcpy(&v, s.data() + i, 16);
    const auto hit =
        (v == colon) | (v == equals) | (v == capital_j) | (v == capital_i) | (v == capital_b);
    std::uint64_t halves[2];
    std::memcpy(halves, &hit, 16);
    if ((halves[0] | halves[1]) == 0) continue;
    if constexpr (std::endian::native == std::endian::little) {
      for (std::size_t h = 0; h < 2; ++h) {
        std::uint64_t m = halves[h];
        while (m != 0) {
          const auto byte = static_cast<std::size_t>(std::countr_zero(m)) / 8;
          bits |= atTrigger(s, i + h * 8 + byte);
          m &= ~(std::uint64_t{0xFF} << (byte * 8));
        }
      }
    } else {
      for (std::size_t k = i; k < i + 16; ++k) bits |= atTrigger(s, k);
    }
  }
  for (; i < n; ++i) bits |= atTrigger(s, i);
  return bits;
}

// ---- rules -----------------------------------------------------------------------------------

struct LineRedactor::Rule {
  std::string name;
  std::string marker;
  std::unique_ptr<RE2> re;
  int groups = 0;
  // Built-ins: whether a candidate span (a group's, or the match's without groups) is a secret.
  bool (*accept)(std::string_view text, std::size_t begin, std::size_t end, int group) = nullptr;
};

namespace {

constexpr int kMaxGroups = 16;

std::expected<std::unique_ptr<LineRedactor::Rule>, std::string> compile(std::string name,
                                                                        std::string_view pattern,
                                                                        std::string marker,
                                                                        bool latin1) {
  auto rule = std::make_unique<LineRedactor::Rule>();
  RE2::Options options;
  options.set_log_errors(false);
  // Built-ins are ASCII patterns over bytes: in Latin-1 every byte is a character, so a value
  // class such as [^\s"] also takes bytes that are not valid UTF-8 (no secret half-masked).
  // Custom patterns keep RE2's defaults, as the config reader compiled them (same result).
  if (latin1) {
    options.set_encoding(RE2::Options::EncodingLatin1);
    options.set_max_mem(2 << 20);
  }
  rule->re = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!rule->re->ok()) return std::unexpected(name + ": " + rule->re->error());
  rule->groups = rule->re->NumberOfCapturingGroups();
  if (rule->groups >= kMaxGroups) {
    return std::unexpected(name + ": more than " + std::to_string(kMaxGroups - 1) +
                           " capturing groups");
  }
  rule->name = std::move(name);
  rule->marker = marker.empty() ? "<redacted:" + rule->name + ">" : std::move(marker);
  return rule;
}

// Replaces in `in` what rule finds (its groups' text, or the whole match without groups), writing
// the result into dst only when there is something to replace. Returns the replacements.
std::uint32_t replaceAll(const LineRedactor::Rule& rule, std::string_view in, std::string& dst) {
  re2::StringPiece sub[kMaxGroups];
  const int nsub = 1 + rule.groups;
  const re2::StringPiece text(in.data(), in.size());
  std::uint32_t count = 0;
  std::size_t pos = 0;
  std::size_t last = 0;  // in `in`, what is copied to dst already
  std::pair<std::size_t, std::size_t> spans[kMaxGroups];
  while (pos <= in.size() && rule.re->Match(text, pos, in.size(), RE2::UNANCHORED, sub, nsub)) {
    const auto begin = static_cast<std::size_t>(sub[0].data() - in.data());
    const std::size_t end = begin + sub[0].size();
    std::size_t n = 0;
    for (int g = rule.groups == 0 ? 0 : 1; g < nsub; ++g) {
      if (sub[g].data() == nullptr || sub[g].empty()) continue;
      const auto b = static_cast<std::size_t>(sub[g].data() - in.data());
      const std::size_t e = b + sub[g].size();
      if (rule.accept != nullptr && !rule.accept(in, b, e, g)) continue;
      spans[n++] = {b, e};
    }
    std::sort(spans, spans + n);
    for (std::size_t i = 0; i < n; ++i) {
      if (spans[i].first < last) continue;  // nested in a group replaced already
      if (count == 0) dst.clear();
      dst.append(in.substr(last, spans[i].first - last));
      dst.append(rule.marker);
      last = spans[i].second;
      ++count;
    }
    pos = end > pos ? end : pos + 1;
  }
  if (count != 0) dst.append(in.substr(last));
  return count;
}

bool base64Char(char c) { return isAlnum(c) || c == '+' || c == '/' || c == '='; }

// A line inside a private key printed over several lines: base64 (short only when it looks like
// the end of one: padding, a digit, '+' or '/'), a PEM header, or empty.
bool keyMaterial(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
    line.remove_suffix(1);
  }
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  if (line.empty()) return true;
  if (line.starts_with("Proc-Type:") || line.starts_with("DEK-Info:") ||
      line.starts_with("Comment:") || line.starts_with("Version:")) {
    return true;
  }
  bool marked = false;
  for (const char c : line) {
    if (!base64Char(c)) return false;
    marked = marked || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
  }
  return line.size() >= 16 || marked;
}

constexpr std::string_view kBegin = "-----BEGIN ";
constexpr std::string_view kEnd = "-----END ";
constexpr std::string_view kDashes = "-----";

// The end of a "-----END <label>-----" footer at or after `from` whose label names a private key,
// or npos.
std::size_t footerEnd(std::string_view s, std::size_t from) {
  for (std::size_t e = s.find(kEnd, from); e != std::string_view::npos; e = s.find(kEnd, e + 1)) {
    const std::size_t close = s.find(kDashes, e + kEnd.size());
    if (close == std::string_view::npos) return std::string_view::npos;
    if (s.substr(e, close - e).find("PRIVATE KEY") != std::string_view::npos) {
      return close + kDashes.size();
    }
  }
  return std::string_view::npos;
}

}  // namespace

LineRedactor::LineRedactor() = default;
LineRedactor::~LineRedactor() = default;

std::expected<std::unique_ptr<LineRedactor>, std::string> LineRedactor::create(
    const LogRedactionOptions& options) {
  std::unique_ptr<LineRedactor> r(new LineRedactor());
  r->builtin_.resize(kBuiltins);
  if (!options.enabled) return r;
  if (options.rules.size() > kMaxRedactionRules) {
    return std::unexpected("more than " + std::to_string(kMaxRedactionRules) + " custom rules");
  }
  for (const auto& name : options.builtin) {
    const auto it =
        std::ranges::find(kBuiltinRedactions, std::string_view(name), &BuiltinRedaction::name);
    if (it == std::end(kBuiltinRedactions)) return std::unexpected("no built-in rule " + name);
    const auto index = static_cast<Builtin>(it - std::begin(kBuiltinRedactions));
    r->builtin_mask_ |= bit(index);
    if (index == kPrivateKey) {
      r->private_key_ = true;  // found by code, not a pattern
      continue;
    }
    std::string pattern;
    bool (*accept)(std::string_view, std::size_t, std::size_t, int) = nullptr;
    switch (index) {
      case kAwsSecretAccessKey:
        pattern = pairPattern(kAwsSecretKeyPattern);
        break;
      case kSecretPair:
        pattern = pairPattern(kSecretPairKeyPattern);
        break;
      case kUrlCredentials:
        pattern = kUrlCredentialsPattern;
        break;
      case kBasicAuth:
        pattern = kBasicAuthPattern;
        break;
      case kBearerToken:
        pattern = kBearerTokenPattern;
        accept = tokenLike;
        break;
      case kJwt:
        pattern = kJwtPattern;
        break;
      case kAwsAccessKeyId:
        pattern = kAwsAccessKeyIdPattern;
        accept = standsAlone;
        break;
      default:
        break;
    }
    auto rule = compile(name, pattern, "", true);
    if (!rule) return std::unexpected(rule.error());
    (*rule)->accept = accept;
    r->builtin_[index] = std::move(*rule);
  }
  for (const auto& custom : options.rules) {
    auto rule = compile(custom.name, custom.pattern, custom.replacement, false);
    if (!rule) return std::unexpected(rule.error());
    r->custom_.push_back(std::move(*rule));
    r->custom_options_.push_back(custom);
  }
  return r;
}

std::vector<std::string> LineRedactor::ruleNames() const {
  std::vector<std::string> names = builtinRedactionNames();
  for (const auto& rule : custom_) names.push_back(rule->name);
  return names;
}

bool LineRedactor::redact(std::string_view line, std::uint64_t custom, bool in_key_block,
                          std::string& out, RedactionResult& result) {
  if (!redactOnce(line, custom, in_key_block, out, result)) return false;
  // A marker can shorten a line so that another rule now matches what it did not before (a
  // private key's header is at most 80 characters; a JWT inside it made it longer): pass again
  // until nothing changes, so that what leaves is what a second redaction would leave. Only lines
  // that had a secret pay for it.
  for (int pass = 0; pass < 4 && result.block == RedactionResult::KeyBlock::kNone; ++pass) {
    RedactionResult more;
    // A rule may match its own marker (password=<redacted:secret_pair>) and write it again:
    // that is no change, and not counted.
    if (!redactOnce(out, custom, false, again_, more) || again_ == out) break;
    for (std::size_t i = 0; i < result.counts.size(); ++i) result.counts[i] += more.counts[i];
    result.total += more.total;
    result.block = more.block;
    out.swap(again_);
  }
  return true;
}

bool LineRedactor::redactOnce(std::string_view line, std::uint64_t custom, bool in_key_block,
                              std::string& out, RedactionResult& result) {
  result.changed = false;
  result.block = RedactionResult::KeyBlock::kNone;
  result.total = 0;
  std::string_view cur = line;
  bool cur_in_out = false;  // cur views out (else the line, or tmp_ once swapped)
  const auto add = [&](std::size_t index, std::uint32_t n) {
    if (result.total == 0) result.counts.fill(0);
    result.counts[index] += n;
    result.total += n;
  };
  // The next text goes to the buffer cur is not in.
  const auto apply = [&](const Rule& rule, std::size_t index) {
    std::string& dst = cur_in_out ? tmp_ : out;
    const std::uint32_t n = replaceAll(rule, cur, dst);
    if (n == 0) return;
    add(index, n);
    cur = dst;
    cur_in_out = !cur_in_out;
  };

  if (private_key_ && in_key_block) {
    const std::size_t footer = footerEnd(line, 0);
    if (footer != std::string_view::npos) {
      out.assign(rule_marker_private_key_);
      out.append(line.substr(footer));
      add(kPrivateKey, 1);
      cur = out;
      cur_in_out = true;
      result.block = RedactionResult::KeyBlock::kClose;
    } else if (keyMaterial(line)) {
      result.block = RedactionResult::KeyBlock::kContinue;
      if (line.empty()) return false;
      out.assign(rule_marker_private_key_);
      add(kPrivateKey, 1);
      result.changed = true;
      return true;  // nothing else in a line of key material
    } else {
      result.block = RedactionResult::KeyBlock::kAbort;
    }
  }

  const std::uint32_t bits =
      builtin_mask_ == 0 ? 0 : (prefilter_on_ ? prefilter(cur) : ~0U) & builtin_mask_;
  if ((bits & bit(kPrivateKey)) != 0) {
    // BEGIN ... END within the entry (a multiline entry, or escaped newlines): the block goes;
    // BEGIN without END: the rest of the line goes, and the lines after it while they are key
    // material.
    std::string& dst = cur_in_out ? tmp_ : out;
    std::size_t last = 0;
    std::uint32_t n = 0;
    for (std::size_t p = cur.find(kBegin); p != std::string_view::npos;) {
      const std::size_t close = cur.find(kDashes, p + kBegin.size());
      if (close == std::string_view::npos) break;
      if (cur.substr(p, close - p).find("PRIVATE KEY") == std::string_view::npos ||
          close - p > 80) {
        p = cur.find(kBegin, close);
        continue;
      }
      if (n == 0) dst.clear();
      dst.append(cur.substr(last, p - last));
      dst.append(rule_marker_private_key_);
      ++n;
      const std::size_t footer = footerEnd(cur, close + kDashes.size());
      if (footer == std::string_view::npos) {
        last = cur.size();
        result.block = RedactionResult::KeyBlock::kOpen;
        break;
      }
      last = footer;
      if (result.block == RedactionResult::KeyBlock::kAbort) {
        result.block = RedactionResult::KeyBlock::kClose;
      }
      p = cur.find(kBegin, footer);
    }
    if (n != 0) {
      dst.append(cur.substr(last));
      add(kPrivateKey, n);
      cur = dst;
      cur_in_out = !cur_in_out;
    }
  }
  for (std::uint8_t b = kAwsSecretAccessKey; b < kBuiltins; ++b) {
    if ((bits & bit(static_cast<Builtin>(b))) != 0) apply(*builtin_[b], b);
  }
  for (std::size_t i = 0; i < custom_.size(); ++i) {
    if ((custom >> i & 1U) != 0) apply(*custom_[i], kBuiltins + i);
  }
  if (result.total == 0) return false;
  if (!cur_in_out) out.swap(tmp_);
  result.changed = true;
  return true;
}

// ---- the stage -------------------------------------------------------------------------------

namespace {

// A private key printed over more lines than this is not followed further (8192-bit RSA in PEM is
// about 100 lines).
constexpr std::uint32_t kMaxKeyBlockLines = 256;
constexpr std::size_t kMaxKeyBlocks = 4096;

std::uint64_t labelsKey(const Labels& labels) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const auto& [name, value] : labels) {
    h = (h ^ std::hash<std::string>{}(name)) * 1099511628211ULL;
    h = (h ^ std::hash<std::string>{}(value)) * 1099511628211ULL;
  }
  return h | (std::uint64_t{1} << 63);  // never a stream number
}

}  // namespace

std::expected<std::unique_ptr<RedactionStage>, std::string> RedactionStage::create(
    const LogRedactionOptions& options, const ContainerMetadata* metadata,
    prometheus::Registry& registry) {
  auto redactor = LineRedactor::create(options);
  if (!redactor) return std::unexpected(redactor.error());
  return std::unique_ptr<RedactionStage>(
      new RedactionStage(std::move(*redactor), metadata, registry));
}

RedactionStage::RedactionStage(std::unique_ptr<LineRedactor> redactor,
                               const ContainerMetadata* metadata, prometheus::Registry& registry)
    : redactor_(std::move(redactor)), resolver_(metadata) {
  auto& family =
      prometheus::BuildCounter()
          .Name("nodewarden_log_redactions_total")
          .Help("Secrets in log lines replaced by a marker, by the rule that found them.")
          .Register(registry);
  for (const auto& name : redactor_->ruleNames())
    counters_.push_back(&family.Add({{"rule", name}}));
  for (std::size_t i = 0; i < redactor_->customRules(); ++i) {
    all_custom_ |= std::uint64_t{1} << i;
    custom_by_stream_ = custom_by_stream_ || !redactor_->customRule(i).match.matchesEverything();
  }
}

RedactionStage::~RedactionStage() = default;

bool RedactionStage::accept(const Labels& labels, const LogEntry& entry,
                            const LogCheckpoint& checkpoint) {
  return acceptStream(labels, entry, checkpoint, 0);
}

std::uint64_t RedactionStage::customRulesFor(const Labels& labels, const LogEntry& entry,
                                             std::uint64_t stream_id) {
  if (!custom_by_stream_) return all_custom_;
  if (const std::uint64_t* known = custom_memo_.find(stream_id, resolver_.generation())) {
    return *known;
  }
  const LogStreamInfo info = resolver_.resolve(labels, entry);
  std::uint64_t mask = 0;
  for (std::size_t i = 0; i < redactor_->customRules(); ++i) {
    if (redactor_->customRule(i).match.matches(info)) mask |= std::uint64_t{1} << i;
  }
  return custom_memo_.put(stream_id, mask);
}

bool RedactionStage::acceptStream(const Labels& labels, const LogEntry& entry,
                                  const LogCheckpoint& checkpoint, std::uint64_t stream_id) {
  const std::uint64_t custom = all_custom_ == 0 ? 0 : customRulesFor(labels, entry, stream_id);
  std::uint64_t block_key = 0;
  bool in_block = false;
  if (!key_blocks_.empty()) {
    block_key = stream_id != 0 ? stream_id : labelsKey(labels);
    in_block = key_blocks_.contains(block_key);
  }
  if (!redactor_->redact(entry.line, custom, in_block, scratch_, result_)) {
    if (!next_->acceptStream(labels, entry, checkpoint, stream_id)) return false;
  } else {
    changed_.timestamp_ns = entry.timestamp_ns;
    changed_.metadata = entry.metadata;
    changed_.line.swap(scratch_);
    const bool taken = next_->acceptStream(labels, changed_, checkpoint, stream_id);
    changed_.line.swap(scratch_);  // both buffers kept for the next changed line
    if (!taken) return false;      // offered again: counted and followed then
    for (std::size_t i = 0; i < counters_.size(); ++i) {
      if (result_.counts[i] != 0) counters_[i]->Increment(result_.counts[i]);
    }
  }
  // What the line meant for a private key printed over several lines, now that it was taken.
  switch (result_.block) {
    case RedactionResult::KeyBlock::kNone:
      break;
    case RedactionResult::KeyBlock::kOpen:
      if (block_key == 0) block_key = stream_id != 0 ? stream_id : labelsKey(labels);
      if (key_blocks_.size() >= kMaxKeyBlocks) key_blocks_.clear();
      key_blocks_[block_key] = 0;
      break;
    case RedactionResult::KeyBlock::kContinue:
      if (++key_blocks_[block_key] >= kMaxKeyBlockLines) key_blocks_.erase(block_key);
      break;
    case RedactionResult::KeyBlock::kClose:
    case RedactionResult::KeyBlock::kAbort:
      key_blocks_.erase(block_key);
      break;
  }
  return true;
}

}  // namespace nodewarden
