// RedactionStage and LineRedactor: each built-in rule on the secrets it is for and on the
// near-misses it must leave alone (UUIDs, git hashes, base64 that is no JWT, prose), the marker
// text, custom rules with and without groups and selectors, private keys over several lines, the
// per-rule counters, and that a line without a secret passes on as it came.
#include "pipeline/log_redaction.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <string>
#include <vector>

namespace nodewarden {
namespace {

// Redacts one line with the given options; the line itself when nothing changed.
class Redact {
 public:
  explicit Redact(LogRedactionOptions options = {}) {
    auto r = LineRedactor::create(options);
    EXPECT_TRUE(r.has_value()) << r.error();
    redactor_ = std::move(*r);
  }
  std::string operator()(std::string_view line, std::uint64_t custom = ~std::uint64_t{0}) {
    if (!redactor_->redact(line, custom, false, out_, result_)) return std::string(line);
    return out_;
  }
  const RedactionResult& result() const { return result_; }

 private:
  std::unique_ptr<LineRedactor> redactor_;
  std::string out_;
  RedactionResult result_;
};

struct Case {
  std::string line;
  std::string want;
};

void expectAll(const std::vector<Case>& cases) {
  Redact redact;
  for (const auto& c : cases) EXPECT_EQ(redact(c.line), c.want) << c.line;
}

void expectUnchanged(const std::vector<std::string>& lines) {
  Redact redact;
  for (const auto& line : lines) EXPECT_EQ(redact(line), line) << line;
}

// A marker can shorten a line so that another rule then matches (a JWT made a private key's
// header longer than its 80 characters): what leaves is what a second redaction would leave.
TEST(LogRedaction, ASecondPassChangesNothing) {
  Redact redact;
  const std::string line =
      "-----BEGIN EC PRIVATE KEY-on "
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
      "dozjgNryP4J3PRIVATE KEY-----";
  const std::string once = redact(line);
  EXPECT_EQ(once, "<redacted:private_key>");
  EXPECT_EQ(redact.result().total, 2U);      // the JWT, then the key it was inside
  EXPECT_EQ(redact.result().counts[0], 1U);  // counts[0]: private_key, the first built-in
  EXPECT_EQ(redact(once), once);
}

TEST(LogRedaction, AwsAccessKeyIds) {
  expectAll({
      {"aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
       "aws_access_key_id = <redacted:aws_access_key_id>"},
      {"key=ASIAY34FZKBOKMUTVV7A,", "key=<redacted:aws_access_key_id>,"},
      {"AKIAIOSFODNN7EXAMPLE", "<redacted:aws_access_key_id>"},
      {"two AKIAIOSFODNN7EXAMPLE AKIAI44QH8DHBEXAMPLE",
       "two <redacted:aws_access_key_id> <redacted:aws_access_key_id>"},
  });
  expectUnchanged({
      "AKIAIOSFODNN7EXAMPL",    // 15 after the prefix
      "AKIAIOSFODNN7EXAMPLEX",  // 17: part of something longer
      "XAKIAIOSFODNN7EXAMPLE",  // inside a word
      "akiaiosfodnn7example",   // ids are capitals
      "AGPAIOSFODNN7EXAMPLE1",  // a group id, not a key
      "ASIA region is up",
  });
}

TEST(LogRedaction, AwsSecretAccessKeys) {
  expectAll({
      {"export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
       "export AWS_SECRET_ACCESS_KEY=<redacted:aws_secret_access_key>"},
      {"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
       "aws_secret_access_key = <redacted:aws_secret_access_key>"},
      {R"({"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "x": 1})",
       R"({"SecretAccessKey": "<redacted:aws_secret_access_key>", "x": 1})"},
  });
  expectUnchanged({"aws_secret_access_key is not set", "rotate the secret access key daily"});
}

TEST(LogRedaction, SecretPairs) {
  expectAll({
      {"connecting password=hunter2 user=bob",
       "connecting password=<redacted:secret_pair> user=bob"},
      {R"({"user":"bob","password":"s3cr\"et","ok":true})",
       R"({"user":"bob","password":"<redacted:secret_pair>","ok":true})"},
      // JSON inside a JSON string (a container's JSON log in a Docker json-file line).
      {R"({"log":"{\"password\":\"hunter2\",\"x\":1}"})",
       R"({"log":"{\"password\":\"<redacted:secret_pair>\",\"x\":1}"})"},
      {"client_secret: abc123 and api_key='k-1 2'",
       "client_secret: <redacted:secret_pair> and api_key='<redacted:secret_pair>'"},
      {"DB_PASSWORD = hunter2", "DB_PASSWORD = <redacted:secret_pair>"},
      {"token=abc&next=1", "token=<redacted:secret_pair>&next=1"},
      {"access_token: \"eyJraWQ\"", "access_token: \"<redacted:secret_pair>\""},
      // Spark's configuration keys.
      {"--conf spark.hadoop.fs.s3a.secret.key=abcd1234 --conf spark.ssl.keyPassword=changeit",
       "--conf spark.hadoop.fs.s3a.secret.key=<redacted:secret_pair> --conf "
       "spark.ssl.keyPassword=<redacted:secret_pair>"},
      // Airflow's environment.
      {"AIRFLOW__CORE__FERNET_KEY=81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=",
       "AIRFLOW__CORE__FERNET_KEY=<redacted:secret_pair>"},
      {"credentials: admin:admin", "credentials: <redacted:secret_pair>"},
  });
  expectUnchanged({
      "the password is wrong",
      "please set password= in the config",  // no value after '=' (a space is none)
      "passwordless login enabled",
      "max_tokens=100 tokenizer=bert password_policy=strict",
      "open /etc/passwd: permission denied",
      R"({"password": ""})",
      "password=<redacted:secret_pair>",  // a marker is not masked again
      "token_count=5 secrets_loaded=3",
  });
}

TEST(LogRedaction, JdbcUrls) {
  expectAll({
      {"jdbc:postgresql://db:5432/app?user=etl&password=Pa55w0rd&ssl=true",
       "jdbc:postgresql://db:5432/app?user=etl&password=<redacted:secret_pair>&ssl=true"},
      {"jdbc:mysql://etl:Pa55w0rd@db:3306/app",
       "jdbc:mysql://etl:<redacted:url_credentials>@db:3306/app"},
      {"jdbc:sqlserver://db:1433;databaseName=app;user=etl;password=Pa55w0rd;",
       "jdbc:sqlserver://db:1433;databaseName=app;user=etl;password=<redacted:secret_pair>;"},
      {"url=jdbc:oracle:thin:scott/tiger@//db:1521/ORCL",
       "url=jdbc:oracle:thin:scott/<redacted:url_credentials>@//db:1521/ORCL"},
  });
}

TEST(LogRedaction, UrlCredentialsKeepSchemeUserAndHost) {
  expectAll({
      {"connecting to postgresql://etl:Pa55w0rd@db.internal:5432/warehouse",
       "connecting to postgresql://etl:<redacted:url_credentials>@db.internal:5432/warehouse"},
      {"redis://:s3cret@redis:6379/0", "redis://:<redacted:url_credentials>@redis:6379/0"},
      // An unencoded '@' in the password: all of it goes, up to the host's '@'.
      {"amqp://guest:p@ss@rabbit:5672/", "amqp://guest:<redacted:url_credentials>@rabbit:5672/"},
      // Airflow connection URIs.
      {"AIRFLOW_CONN_MY_DB='mysql://user:pw@host:3306/db'",
       "AIRFLOW_CONN_MY_DB='mysql://user:<redacted:url_credentials>@host:3306/db'"},
  });
  expectUnchanged({
      "GET http://localhost:8080/path?email=a@b.example",
      "ssh://git@github.com/org/repo.git",
      "git@github.com:org/repo.git",
      "https://example.com:8443/",
  });
}

TEST(LogRedaction, AuthorizationHeaders) {
  expectAll({
      {"GET / Authorization: Bearer abc.def-ghi",
       "GET / Authorization: Bearer <redacted:bearer_token>"},
      {R"(curl -H "Authorization: Basic dXNlcjpwYXNz" https://x)",
       R"(curl -H "Authorization: Basic <redacted:basic_auth>" https://x)"},
      {R"({"headers":{"authorization":"Bearer t0k3n"}})",
       R"({"headers":{"authorization":"Bearer <redacted:bearer_token>"}})"},
      // Go's http.Header as %v.
      {"map[Authorization:[Basic dXNlcjpwYXNz] Accept:[*/*]]",
       "map[Authorization:[Basic <redacted:basic_auth>] Accept:[*/*]]"},
      {"sent Bearer ya29.a0AfH6SMBx3k9vJ2 to the API",
       "sent Bearer <redacted:bearer_token> to the API"},
  });
  expectUnchanged({
      "the bearer token expired",
      "Bearer authentication failed for user bob",
      "Basic auth disabled",
      "Authorization: Negotiate",
  });
}

TEST(LogRedaction, JsonWebTokens) {
  const std::string jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
      "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
  expectAll({
      {"session " + jwt + " accepted", "session <redacted:jwt> accepted"},
      {"Authorization: Bearer " + jwt, "Authorization: Bearer <redacted:bearer_token>"},
  });
  expectUnchanged({
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",             // base64 JSON, no JWT
      "payload dGhpcyBpcyBub3QgYSBqd3QuLi4=.eyJub3Q",     // base64 with dots
      "trace 123e4567-e89b-12d3-a456-426614174000",       // a UUID
      "commit 3f786850e387550fdab836ed7e6dc881de23001b",  // a git sha
      "sha256:9b2f5c1e0e5d4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b",
      "data QUtJQUlPU0ZPRE5ON0VYQU1QTEU=",  // base64 of a key id
  });
}

TEST(LogRedaction, PrivateKeyInOneEntry) {
  expectAll({
      {"key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY----- ok",
       "key: <redacted:private_key> ok"},
      {R"({"pem":"-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----"})",
       R"({"pem":"<redacted:private_key>"})"},
      {"-----BEGIN OPENSSH PRIVATE KEY-----", "<redacted:private_key>"},
  });
  expectUnchanged({"-----BEGIN CERTIFICATE-----", "-----BEGIN PUBLIC KEY-----",
                   "------------------------------"});
}

TEST(LogRedaction, CustomRulesWithAndWithoutGroups) {
  LogRedactionOptions options;
  options.builtin.clear();
  options.rules.push_back({"ssn", R"(\b\d{3}-\d{2}-\d{4}\b)", {}, ""});
  options.rules.push_back({"card", R"(card=(\d{12})(\d{4}))", {}, "****"});
  Redact redact(options);
  EXPECT_EQ(redact("ssn 123-45-6789 ok"), "ssn <redacted:ssn> ok");
  EXPECT_EQ(redact("card=4111111111111111"), "card=********");
  EXPECT_EQ(redact.result().counts[8 + 1], 2U) << "two groups, two replacements";
  EXPECT_EQ(redact("ssn 123-45-6789", 0b10), "ssn 123-45-6789") << "rule 0 not for this stream";
  // No built-ins enabled: a built-in's secret passes.
  EXPECT_EQ(redact("password=hunter2"), "password=hunter2");
}

TEST(LogRedaction, OnlyTheListedBuiltinsRun) {
  LogRedactionOptions options;
  options.builtin = {"jwt"};
  Redact redact(options);
  EXPECT_EQ(redact("password=hunter2"), "password=hunter2");
  EXPECT_EQ(redact("eyJhbGciOi.eyJzdWIiOi.sig"), "<redacted:jwt>");
}

TEST(LogRedaction, SeveralRulesOnOneLine) {
  Redact redact;
  EXPECT_EQ(redact("password=a token=b https://u:p@h AKIAIOSFODNN7EXAMPLE"),
            "password=<redacted:secret_pair> token=<redacted:secret_pair> "
            "https://u:<redacted:url_credentials>@h <redacted:aws_access_key_id>");
  EXPECT_EQ(redact.result().total, 4U);
}

// Every built-in's secret must pass the prefilter: a line the rule would change with the
// prefilter off is changed with it on. (Checked on the cases above through redact(); here on
// variants of spacing and quoting the prefilter must look through.)
TEST(LogRedaction, PrefilterLooksThroughSpacesAndQuotes) {
  expectAll({
      {"password   =   x", "password   =   <redacted:secret_pair>"},
      {"password\t: x", "password\t: <redacted:secret_pair>"},
      {R"('password' : 'x')", R"('password' : '<redacted:secret_pair>')"},
      {R"(\"password\" : \"x\")", R"(\"password\" : \"<redacted:secret_pair>\")"},
  });
}

// The prefilter's delimiters are RE2's: \s has no \v, so a \v inside a URL's user part does not
// end the authority for the pattern, nor may it for the prefilter; "Bearer" may be followed by
// any \s, a form feed too.
TEST(LogRedaction, PrefilterAgreesWithRe2OnWhitespace) {
  expectAll({
      {"http://u\v:p4ss@h/", "http://u\v:<redacted:url_credentials>@h/"},
      {"Bearer\fya29.a0AfH6SMBx3k9vJ2", "Bearer\f<redacted:bearer_token>"},
  });
}

// A ':' that starts "://" may also end a key (found by fuzz_log_rules): both are looked at.
TEST(LogRedaction, PrefilterColonIsBothUrlAndKey) {
  expectAll({{"x&password://:s3cret@redis:6379/0", "x&password:<redacted:secret_pair>"}});
}

// ---- the stage ----------------------------------------------------------------------------

class Capture final : public LogSink {
 public:
  bool accept(const Labels& labels, const LogEntry& entry, const LogCheckpoint&) override {
    if (refuse) return false;
    lines.push_back(entry.line);
    last_labels = labels;
    last_metadata = entry.metadata;
    last_address = entry.line.data();
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return !refuse; }
  std::vector<std::string> lines;
  Labels last_labels;
  Labels last_metadata;
  const char* last_address = nullptr;
  bool refuse = false;
};

double counter(prometheus::Registry& registry, const std::string& rule) {
  for (const auto& family : registry.Collect()) {
    if (family.name != "nodewarden_log_redactions_total") continue;
    for (const auto& m : family.metric) {
      if (m.label.size() == 1 && m.label[0].value == rule) return m.counter.value;
    }
  }
  return -1;
}

struct StageFixture {
  explicit StageFixture(LogRedactionOptions options = {}) {
    auto s = RedactionStage::create(options, nullptr, registry);
    EXPECT_TRUE(s.has_value()) << s.error();
    stage = std::move(*s);
    stage->setNext(sink);
  }
  bool send(const std::string& line, std::uint64_t stream = 7, const Labels& labels = kApp) {
    entry.line = line;
    return stage->acceptStream(labels, entry, LogCheckpoint{}, stream);
  }
  static inline const Labels kApp = {{"container", "app"}, {"namespace", "team-a"}};
  prometheus::Registry registry;
  Capture sink;
  std::unique_ptr<RedactionStage> stage;
  LogEntry entry{1, "", {{"pod_uid", "u-1"}}};
};

TEST(RedactionStage, PassesAnUnchangedEntryAsItCame) {
  StageFixture f;
  ASSERT_TRUE(f.send("I1118 10:00:00.000000 1 main.go:12] all good: took=12ms"));
  ASSERT_EQ(f.sink.lines.size(), 1U);
  EXPECT_EQ(f.sink.last_address, f.entry.line.data()) << "the reader's entry, not a copy";
}

TEST(RedactionStage, ChangedEntryKeepsTimestampAndMetadataAndIsCounted) {
  StageFixture f;
  ASSERT_TRUE(f.send("login password=hunter2 token=abc"));
  ASSERT_EQ(f.sink.lines.size(), 1U);
  EXPECT_EQ(f.sink.lines[0], "login password=<redacted:secret_pair> token=<redacted:secret_pair>");
  EXPECT_EQ(f.sink.last_metadata, f.entry.metadata);
  EXPECT_EQ(f.sink.last_labels, StageFixture::kApp);
  EXPECT_EQ(counter(f.registry, "secret_pair"), 2);
  EXPECT_EQ(counter(f.registry, "jwt"), 0);
}

TEST(RedactionStage, RefusedEntryIsCountedOnlyOnceTaken) {
  StageFixture f;
  f.sink.refuse = true;
  EXPECT_FALSE(f.send("password=hunter2"));
  EXPECT_FALSE(f.send("password=hunter2"));
  EXPECT_EQ(counter(f.registry, "secret_pair"), 0);
  f.sink.refuse = false;
  EXPECT_TRUE(f.send("password=hunter2"));
  EXPECT_EQ(counter(f.registry, "secret_pair"), 1);
}

TEST(RedactionStage, PrivateKeyOverSeveralLinesOfOneStream) {
  StageFixture f;
  const Labels other = {{"container", "other"}};
  ASSERT_TRUE(f.send("loading key -----BEGIN RSA PRIVATE KEY-----"));
  ASSERT_TRUE(f.send("MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2t7Hc6bnbKxEoqjwqL5Vxbb"));
  ASSERT_TRUE(f.send("I1118 plain line of another stream", 8, other));
  ASSERT_TRUE(f.send("Proc-Type: 4,ENCRYPTED"));
  ASSERT_TRUE(f.send(""));
  ASSERT_TRUE(f.send("dd0PnA=="));
  ASSERT_TRUE(f.send("-----END RSA PRIVATE KEY----- loaded"));
  ASSERT_TRUE(f.send("MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2t7Hc6bnbKxEoqjwqL5Vxbb"));
  EXPECT_EQ(f.sink.lines, (std::vector<std::string>{
                              "loading key <redacted:private_key>",
                              "<redacted:private_key>",
                              "I1118 plain line of another stream",
                              "<redacted:private_key>",
                              "",
                              "<redacted:private_key>",
                              "<redacted:private_key> loaded",
                              // after the END line the block is over
                              "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2t7Hc6bnbKxEoqjwqL5Vxbb",
                          }));
  EXPECT_EQ(counter(f.registry, "private_key"), 5);
}

TEST(RedactionStage, PrivateKeyBlockEndsAtALineThatIsNoKeyMaterial) {
  StageFixture f;
  ASSERT_TRUE(f.send("-----BEGIN EC PRIVATE KEY-----"));
  ASSERT_TRUE(f.send("MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49"));
  ASSERT_TRUE(f.send("2026-11-18 10:00:01 INFO server started on :8080"));
  ASSERT_TRUE(f.send("MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49"));
  EXPECT_EQ(f.sink.lines[2], "2026-11-18 10:00:01 INFO server started on :8080");
  EXPECT_EQ(f.sink.lines[3], "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49");
}

TEST(RedactionStage, RefusedKeyLineDoesNotMoveTheBlock) {
  StageFixture f;
  ASSERT_TRUE(f.send("-----BEGIN PRIVATE KEY-----"));
  f.sink.refuse = true;
  EXPECT_FALSE(f.send("-----END PRIVATE KEY-----"));
  f.sink.refuse = false;
  ASSERT_TRUE(f.send("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"));
  EXPECT_EQ(f.sink.lines.back(), "<redacted:private_key>") << "still inside the block";
}

TEST(RedactionStage, CustomRuleOnlyForTheStreamsItsSelectorPicks) {
  LogRedactionOptions options;
  LogSelector team_a;
  team_a.namespaces = {"team-a"};
  options.rules.push_back({"order_id", R"(ORD-\d+)", team_a, ""});
  StageFixture f(options);
  ASSERT_TRUE(f.send("shipped ORD-123"));
  ASSERT_TRUE(f.send("shipped ORD-123", 9, {{"container", "app"}, {"namespace", "team-b"}}));
  ASSERT_TRUE(f.send("shipped ORD-124"));
  EXPECT_EQ(f.sink.lines,
            (std::vector<std::string>{"shipped <redacted:order_id>", "shipped ORD-123",
                                      "shipped <redacted:order_id>"}));
  EXPECT_EQ(counter(f.registry, "order_id"), 2);
}

TEST(RedactionStage, UnnumberedEntriesAreRedactedToo) {
  StageFixture f;
  f.entry.line = "journal: password=hunter2";
  ASSERT_TRUE(f.stage->accept({{"unit", "kubelet.service"}}, f.entry, LogCheckpoint{}));
  EXPECT_EQ(f.sink.lines[0], "journal: password=<redacted:secret_pair>");
}

TEST(LineRedactor, RejectsABadCustomPattern) {
  LogRedactionOptions options;
  options.rules.push_back({"bad", "(unclosed", {}, ""});
  const auto r = LineRedactor::create(options);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("bad"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace nodewarden
