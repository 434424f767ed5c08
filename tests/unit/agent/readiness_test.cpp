// Tests for agent/readiness: what /readyz answers before the first collection, with components
// down, and once they are up again.
#include "agent/readiness.h"

#include <gtest/gtest.h>

namespace nodewarden {
namespace {

TEST(Readiness, NotReadyUntilTheFirstCollection) {
  Readiness r;
  EXPECT_FALSE(r.answer().ready);
  EXPECT_EQ(r.answer().body, "first collection not finished\n");
  r.firstCollectionDone();
  EXPECT_TRUE(r.answer().ready);
  EXPECT_EQ(r.answer().body, "ready\n");
}

TEST(Readiness, EachDownComponentIsOneLineWithItsLatestReason) {
  Readiness r;
  r.firstCollectionDone();
  r.setDown("remote_write", "cannot open the spool: create /s/spool/remote_write: Not a directory");
  r.setDown("logs", "first reason");
  r.setDown("logs", "cannot open the spool: read /s/spool/logs/ack: Is a directory");
  EXPECT_TRUE(r.isDown("logs"));
  const auto a = r.answer();
  EXPECT_FALSE(a.ready);
  EXPECT_EQ(a.body,
            "logs: cannot open the spool: read /s/spool/logs/ack: Is a directory\n"
            "remote_write: cannot open the spool: create /s/spool/remote_write: Not a directory\n");
  r.setUp("logs");
  EXPECT_FALSE(r.isDown("logs"));
  EXPECT_FALSE(r.answer().ready);
  r.setUp("remote_write");
  EXPECT_TRUE(r.answer().ready);
}

}  // namespace
}  // namespace nodewarden
