// What a Client needs to know before it dials: the members to talk to and how
// long to wait for them. Plain data, no behaviour; it must never open a
// connection or read a file by itself (the TLS paths are read by the Client).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace grpc {
class Channel;
}

namespace ganglion::client {

struct TlsFiles {
  std::string ca_file;    // PEM; empty means the system roots
  std::string cert_file;  // PEM client certificate, for mutual TLS
  std::string key_file;   // PEM private key of cert_file
};

struct ClientConfig {
  // "host:port" of each member. At least one; order is the first preference.
  std::vector<std::string> endpoints;
  // A channel already made, used instead of dialing: an in-process channel
  // to the gRPC server of this same process (grpc::Server::InProcessChannel),
  // so a component inside a member reaches it without a network hop. Then
  // `endpoints` holds one name for it, used in logs only.
  std::shared_ptr<grpc::Channel> channel;
  // How long one attempt may wait for a connection that is not up yet before
  // the next member is tried.
  std::chrono::milliseconds dial_timeout{2000};
  // The whole budget of one unary call, every retry included.
  std::chrono::milliseconds request_timeout{5000};
  // A member that failed is not tried again for this long; the period doubles
  // per consecutive failure up to unhealthy_backoff_max.
  std::chrono::milliseconds unhealthy_backoff{300};
  std::chrono::milliseconds unhealthy_backoff_max{5000};
  // HTTP/2 keepalive pings, so a member that stopped answering is noticed on
  // an idle stream. etcd refuses pings more often than every 5 s.
  std::chrono::milliseconds keepalive_time{10000};
  std::chrono::milliseconds keepalive_timeout{5000};

  // Carried for when TLS and authentication are wired; a Client refuses a
  // config that sets them until then rather than silently talking in clear.
  bool use_tls = false;
  TlsFiles tls;
  std::string username;
  std::string password;
};

}  // namespace ganglion::client
