// http_request: one HTTP(S) request on behalf of an agent.
//
// Checks, in order (each refusal is kPermissionDenied, naming what was refused):
//  1. The URL's host must match an entry of grants.http_hosts: the exact host name
//     (ASCII case-insensitive, a trailing dot ignored), "*.suffix" for any host under suffix
//     (not suffix itself), or "*" for any host. No entry, no request.
//  2. The host is resolved (bounded by the call's deadline) and every address must be public:
//     loopback, RFC 1918 private, carrier-grade NAT (100.64/10), link-local (169.254/16, where
//     cloud metadata lives, fe80::/10), unique-local (fc00::/7), unspecified, multicast and
//     reserved ranges are refused, also when embedded in IPv6 (::ffff:a.b.c.d, NAT64, 6to4),
//     unless grants.private_addresses.
//  3. For http:// the request is sent to the checked address itself (the Host header keeps the
//     name), so a DNS answer that changes between check and connect (rebinding) cannot redirect
//     it. https:// connects by name: the certificate check binds the connection to the name.
// Redirects are not followed (a 3xx is returned to the model as is). The request carries
// Idempotency-Key: <the call's idempotency key>. The response (status line, headers, body cut
// to HttpRequestToolOptions::max_body_bytes with a note) is the tool's content; is_error is set
// for 4xx and 5xx. Transport failures keep the HttpClient's error codes.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace strowger::tools::builtin {

// False for the non-public addresses listed above.
bool IsPublicAddress(const boost::asio::ip::address& address);

// True if `host` matches an entry of `allowlist` (rule 1 above).
bool HostAllowed(std::string_view host, const std::vector<std::string>& allowlist);

}  // namespace strowger::tools::builtin
