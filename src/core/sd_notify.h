// systemd readiness protocol without libsystemd: datagrams to $NOTIFY_SOCKET ("READY=1",
// "STOPPING=1", "WATCHDOG=1", "STATUS=..."). A no-op when NOTIFY_SOCKET is unset.
// Thread-safety: notify() may be called from any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace edgecoder::core {

// Sends one message; returns false when there is no socket or the send failed.
bool sd_notify(std::string_view message);

// The interval at which WATCHDOG=1 must be sent (half of WATCHDOG_USEC), when the watchdog is
// enabled for this process (WATCHDOG_PID unset or equal to our pid).
std::optional<std::chrono::microseconds> sd_watchdog_interval();

}  // namespace edgecoder::core
