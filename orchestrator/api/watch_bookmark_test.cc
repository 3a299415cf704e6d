// Watch bookmarks over real HTTP: an ApiServer on loopback over an in-memory
// store, a watch with allowWatchBookmarks=true read as a chunked stream while
// another thread writes. kubectl never asks for bookmarks, so this is their
// only end-to-end check.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "orchestrator/api/api_server.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/storage/memory_object_store.h"

namespace ganglion::orchestrator {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

// GET `target` from `address` ("host:port") and read the whole (chunked) body.
std::string Get(const std::string& address, const std::string& target) {
  boost::asio::io_context ioc;
  const size_t colon = address.rfind(':');
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  stream.connect(resolver.resolve(address.substr(0, colon), address.substr(colon + 1)));
  stream.expires_after(std::chrono::seconds(20));
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, address);
  req.set(http::field::accept, "application/json");
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, buffer, parser);
  return parser.get().body();
}

struct Line {
  std::string type;
  int64_t revision;
};

std::vector<Line> Lines(const std::string& body) {
  std::vector<Line> out;
  for (absl::string_view text : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    Json j = Json::parse(text);
    out.push_back(
        {j["type"], std::stoll(j["object"]["metadata"]["resourceVersion"].get<std::string>())});
  }
  return out;
}

class WatchBookmarkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ApiHandler handler(store_, "127.0.0.1:0");
    ASSERT_TRUE(handler.EnsureDefaultNamespaces().ok());
    ApiServerOptions options;
    options.listen_addresses = {"127.0.0.1:0"};
    options.watch_bookmark_interval = std::chrono::milliseconds(5);
    auto server = ApiServer::Start(options, &store_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = server_->addresses().at(0);
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void WriteConfigMaps(int count) {
    for (int i = 0; i < count; ++i) {
      const std::string name = absl::StrCat("cm", i);
      Json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}};
      ASSERT_TRUE(store_.Create("/registry/configmaps/default/" + name, cm.dump()).ok());
      // Writes elsewhere move the revision without events for this watch.
      ASSERT_TRUE(store_.Create("/registry/leases/default/" + name, cm.dump()).ok());
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  }

  MemoryObjectStore store_;
  std::unique_ptr<ApiServer> server_;
  std::string address_;
};

TEST_F(WatchBookmarkTest, BookmarksCarryTheCurrentRevisionAndNeverOvertakeEvents) {
  const int64_t start = store_.watched_revision();
  std::thread writer([&] { WriteConfigMaps(150); });
  const std::string body =
      Get(address_,
          absl::StrCat("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=", start,
                       "&allowWatchBookmarks=true&timeoutSeconds=2"));
  writer.join();
  const std::vector<Line> lines = Lines(body);
  int added = 0, bookmarks = 0;
  int64_t last_event = start, last_bookmark = 0;
  for (const Line& l : lines) {
    if (l.type == "BOOKMARK") {
      ++bookmarks;
      // A bookmark promises every event up to it was sent, and never goes back.
      EXPECT_GE(l.revision, last_event);
      EXPECT_GE(l.revision, last_bookmark);
      last_bookmark = l.revision;
    } else {
      ASSERT_EQ(l.type, "ADDED");
      ++added;
      EXPECT_GT(l.revision, last_bookmark) << "an event arrived after a bookmark that covered it";
      EXPECT_GT(l.revision, last_event);
      last_event = l.revision;
    }
  }
  EXPECT_EQ(added, 150);
  EXPECT_GT(bookmarks, 10);
  // After the writes, bookmarks carry the store's current revision (which the
  // lease writes moved past the last configmap event).
  EXPECT_EQ(last_bookmark, store_.watched_revision());
  EXPECT_GT(last_bookmark, last_event);
}

TEST_F(WatchBookmarkTest, NoBookmarksUnlessAskedFor) {
  WriteConfigMaps(3);
  const std::string body =
      Get(address_, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1");
  const std::vector<Line> lines = Lines(body);
  ASSERT_EQ(lines.size(), 3u) << body;  // the initial ADDED events, nothing else
  for (const Line& l : lines) EXPECT_EQ(l.type, "ADDED");
}

}  // namespace
}  // namespace ganglion::orchestrator
