// Campaigns for leadership of --election as --name, holds it for
// --hold-seconds (proclaiming a heartbeat each second), then resigns. Start
// two at once to watch one wait for the other.
//   ganglion-election-example --name=a --election=/demo/leader
#include "client/concurrency/election.h"

#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/examples/flags.h"

int main(int argc, char** argv) {
  using namespace ganglion::client;
  const auto flags = examples::ParseFlags(argc, argv);
  const std::string name = examples::Flag(flags, "name", "candidate");
  const std::string election_prefix = examples::Flag(flags, "election", "/demo/leader");
  const int hold_s = std::stoi(examples::Flag(flags, "hold-seconds", "3"));
  auto client = Client::Create(examples::ConfigFromFlags(flags));
  if (!client.ok()) {
    std::fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
    return 1;
  }
  SessionOptions session_options;
  session_options.ttl_s = 5;  // leadership ends within 5 s if this process dies
  session_options.on_lost = [](absl::Status why) {
    std::fprintf(stderr, "session lost: %s\n", why.ToString().c_str());
  };
  auto session = Session::Create(**client, session_options);
  if (!session.ok()) {
    std::fprintf(stderr, "session: %s\n", session.status().ToString().c_str());
    return 1;
  }
  Election election(**session, election_prefix);
  std::printf("%s campaigning\n", name.c_str());
  std::fflush(stdout);
  if (absl::Status s = election.Campaign(name, absl::Seconds(60)); !s.ok()) {
    std::fprintf(stderr, "campaign: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s is the leader (key %s)\n", name.c_str(), election.key().c_str());
  std::fflush(stdout);
  for (int i = 1; i <= hold_s; ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (absl::Status s = election.Proclaim(absl::StrCat(name, " heartbeat ", i)); !s.ok()) {
      std::fprintf(stderr, "proclaim: %s\n", s.ToString().c_str());
      return 1;
    }
    auto leader = election.Leader();
    if (leader.ok()) std::printf("leader says: %s\n", leader->value().c_str());
    std::fflush(stdout);
  }
  if (absl::Status s = election.Resign(); !s.ok()) {
    std::fprintf(stderr, "resign: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s resigned\n", name.c_str());
  return 0;
}
