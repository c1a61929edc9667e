// bench/aws-calls.sh's engine: `roll-bench outbound URL CALLS CONCURRENCY [CA_FILE]` sends
// CALLS POSTs shaped like an AWS call (a DescribeTargetHealth form and SigV4's headers) to
// URL through the outbound client, CONCURRENCY at a time, twice side by side: a new
// connection per call (rollgate before it kept connections) and connections kept per
// origin. Prints calls per second and CPU per call (this process, user + system) of each.
import Foundation
import Outbound

func outboundBench(_ arguments: [String]) async throws {
    guard arguments.count >= 3, let calls = Int(arguments[1]), let concurrency = Int(arguments[2]) else {
        print("usage: roll-bench outbound URL CALLS CONCURRENCY [CA_FILE]")
        exit(64)
    }
    let url = arguments[0]
    let caFile = arguments.count > 3 ? arguments[3] : nil
    let form = Array(("Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn=arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1"
        + "%3A123456789012%3Atargetgroup%2Fweb%2F0123456789abcdef&Targets.member.1.Id=i-0123456789abcdef0&Targets.member.1.Port=80").utf8)
    let headers = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                   ("X-Amz-Date", "20261206T020000Z"),
                   ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/elasticloadbalancing/aws4_request, "
                    + "SignedHeaders=content-type;host;x-amz-date, Signature=" + String(repeating: "0", count: 64))]
    func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
    print("outbound: \(calls) POSTs of \(form.count) bytes to \(url), \(concurrency) at a time")
    var rates: [Double] = []
    for reuse in [false, true] {
        let http = CurlHTTP(caFile: caFile, reuseConnections: reuse)
        // One call first: libcurl loaded, TLS set up, not counted.
        _ = try await http.send(OutboundRequest(method: "POST", url: url, headers: headers, body: form))
        let cpuBefore = cpuSeconds()
        let started = Date()
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var failed = 0
                    for _ in stride(from: worker, to: calls, by: concurrency) {
                        let response = try await http.send(OutboundRequest(method: "POST", url: url, headers: headers, body: form))
                        if response.status != 200 { failed += 1 }
                    }
                    return failed
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = Date().timeIntervalSince(started)
        let cpu = cpuSeconds() - cpuBefore
        rates.append(Double(calls) / elapsed)
        print(String(format: "%@  %7.0f calls/s   %6.0f us CPU per call   %d failed", reuse ? "connections kept:  " : "new connection each:",
                     Double(calls) / elapsed, cpu / Double(calls) * 1e6, failures))
    }
    print(String(format: "kept / new: %.2fx the calls per second", rates[1] / rates[0]))
}
