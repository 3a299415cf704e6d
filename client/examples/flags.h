// The few command-line flags the examples share (--endpoints=a,b,c and
// --name=value), parsed by hand so the examples need nothing beyond the
// client library. Examples only; never a dependency of the library.
#pragma once

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "client/client.h"

namespace ganglion::client::examples {

// "--key=value" and "--key value" into a map; unknown keys are the caller's
// to refuse.
inline std::map<std::string, std::string> ParseFlags(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) continue;
    arg = arg.substr(2);
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      flags[arg.substr(0, eq)] = arg.substr(eq + 1);
    } else if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) {
      flags[arg] = argv[++i];
    } else {
      flags[arg] = "true";
    }
  }
  return flags;
}

inline std::string Flag(const std::map<std::string, std::string>& flags, const std::string& name,
                        const std::string& fallback) {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

inline ClientConfig ConfigFromFlags(const std::map<std::string, std::string>& flags) {
  ClientConfig config;
  config.endpoints = absl::StrSplit(Flag(flags, "endpoints", "127.0.0.1:2379"), ',');
  return config;
}

}  // namespace ganglion::client::examples
