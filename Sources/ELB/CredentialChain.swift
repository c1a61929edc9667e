#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Outbound
import Rollout

public struct CredentialsError: Error, CustomStringConvertible, Equatable {
    public let description: String
    static let notFoundPrefix = "no AWS credentials: "
    /// Nothing configured (as opposed to something configured wrong): try the next source.
    var isNotFound: Bool { description.hasPrefix(CredentialsError.notFoundPrefix) }
}

/// Credentials as the AWS CLI finds them: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
/// (`AWS_SESSION_TOKEN`), then `AWS_PROFILE` (default `default`) in the shared credentials
/// file (`AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/credentials`) and the config file
/// (`AWS_CONFIG_FILE`, `~/.aws/config`, sections `[profile NAME]`), then EC2 instance
/// metadata (IMDSv2) unless `AWS_EC2_METADATA_DISABLED=true`. Files are read at each call,
/// so rotated keys are picked up; metadata credentials are refreshed before they expire.
public struct CredentialChain: AWSCredentialProvider {
    let environment: [String: String]
    let metadata: InstanceMetadataCredentials?

    /// `http` asks the instance metadata (the one outbound client of the process).
    public init(environment: [String: String], http: any OutboundHTTP, clock: any RolloutClock = SystemClock()) {
        self.environment = environment
        let disabled = environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true"
        metadata = disabled ? nil : InstanceMetadataCredentials(
            endpoint: environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://169.254.169.254",
            http: http, clock: clock)
    }

    public func credentials() async throws -> AWSCredentials {
        do {
            return try resolve()
        } catch let notFound as CredentialsError where notFound.isNotFound {
            guard let metadata else { throw notFound }
            do {
                return try await metadata.credentials()
            } catch {
                throw CredentialsError(description: "\(notFound.description); and \(error)")
            }
        }
    }

    public func resolve() throws -> AWSCredentials {
        if let key = nonEmpty("AWS_ACCESS_KEY_ID") {
            guard let secret = nonEmpty("AWS_SECRET_ACCESS_KEY") else {
                throw CredentialsError(description: "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
            }
            return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: nonEmpty("AWS_SESSION_TOKEN"))
        }
        let profile = nonEmpty("AWS_PROFILE") ?? nonEmpty("AWS_DEFAULT_PROFILE") ?? "default"
        for (file, section) in [(credentialsFile, profile), (configFile, profile == "default" ? "default" : "profile \(profile)")] {
            guard let values = IniFile.section(section, in: file) else { continue }
            if let key = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] {
                return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: values["aws_session_token"])
            }
        }
        throw CredentialsError(description: CredentialsError.notFoundPrefix + "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in \(credentialsFile) or \(configFile)")
    }

    /// Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
    public func region() -> String? {
        if let region = nonEmpty("AWS_REGION") ?? nonEmpty("AWS_DEFAULT_REGION") { return region }
        let profile = nonEmpty("AWS_PROFILE") ?? "default"
        return IniFile.section(profile == "default" ? "default" : "profile \(profile)", in: configFile)?["region"]
    }

    var home: String { environment["HOME"] ?? "/root" }
    var credentialsFile: String { nonEmpty("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials" }
    var configFile: String { nonEmpty("AWS_CONFIG_FILE") ?? home + "/.aws/config" }

    func nonEmpty(_ key: String) -> String? {
        guard let value = environment[key], !value.isEmpty else { return nil }
        return value
    }
}

/// The AWS CLI's INI files: `[section]`, `key = value`, `#` and `;` comments.
enum IniFile {
    static func section(_ wanted: String, in path: String) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var current: String?
        var values: [String: String]?
        for rawLine in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmed(where: \.isWhitespace)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                if values != nil { return values }
                current = line.dropFirst().dropLast().trimmed(where: \.isWhitespace)
                if current == wanted { values = [:] }
                continue
            }
            guard current == wanted, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmed(where: \.isWhitespace).lowercased()
            let value = line[line.index(after: equals)...].trimmed(where: \.isWhitespace)
            values?[key] = value
        }
        return values
    }
}
