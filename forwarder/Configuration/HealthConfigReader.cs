using Forwarder.LoadBalancing.Health;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads a service's <c>healthCheck</c> and <c>outlierDetection</c> sections; each is off when absent.</summary>
internal static class HealthConfigReader
{
    public static HealthCheckOptions? ReadHealthCheck(YamlFieldReader reader, YamlNode? node, string servicePath)
    {
        if (node is null)
        {
            return null;
        }

        var path = $"{servicePath}.healthCheck";
        var fields = reader.Mapping(node, path, "type", "path", "host", "interval", "timeout", "healthyThreshold", "unhealthyThreshold", "jitter");
        if (fields is null)
        {
            return null;
        }

        var kind = reader.Parsed(fields, path, "type", HealthCheckKind.Tcp, "tcp or http",
            (string text, out HealthCheckKind value) =>
            {
                value = text == "http" ? HealthCheckKind.Http : HealthCheckKind.Tcp;
                return text is "tcp" or "http";
            });
        var checkPath = reader.String(fields, path, "path", required: false, node);
        var host = reader.String(fields, path, "host", required: false, node);
        if (kind == HealthCheckKind.Tcp && (checkPath is not null || host is not null))
        {
            reader.Error(fields.GetValueOrDefault("path") ?? fields["host"], path, "path and host belong to an http check; add 'type: http' or remove them");
        }

        // Both end up in the request line or a header: no room for whitespace or control characters.
        if (checkPath is not null && (!checkPath.StartsWith('/') || checkPath.Any(c => c <= ' ' || c >= 0x7f)))
        {
            reader.Error(fields["path"], $"{path}.path", $"expected a path such as /healthz (no spaces or control characters), got '{checkPath}'");
        }

        if (host is not null && (host.Length == 0 || host.Any(c => c <= ' ' || c >= 0x7f)))
        {
            reader.Error(fields["host"], $"{path}.host", $"expected a host name such as api.internal, got '{host}'");
        }

        var options = new HealthCheckOptions(
            kind,
            Interval: reader.Duration(fields, path, "interval", TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(10)),
            Timeout: reader.Duration(fields, path, "timeout", TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(1)),
            HealthyThreshold: reader.Int(fields, path, "healthyThreshold", 2, 1, 1000),
            UnhealthyThreshold: reader.Int(fields, path, "unhealthyThreshold", 3, 1, 1000),
            Jitter: reader.Duration(fields, path, "jitter", TimeSpan.Zero, TimeSpan.Zero),
            Path: checkPath ?? "/",
            Host: host);
        return options;
    }

    public static OutlierDetectionOptions? ReadOutlierDetection(YamlFieldReader reader, YamlNode? node, string servicePath)
    {
        if (node is null)
        {
            return null;
        }

        var path = $"{servicePath}.outlierDetection";
        var fields = reader.Mapping(node, path, "consecutiveFailures", "baseEjectionTime", "maxEjectionTime", "maxEjectionPercent");
        if (fields is null)
        {
            return null;
        }

        var defaults = OutlierDetectionOptions.Default;
        var options = new OutlierDetectionOptions(
            ConsecutiveFailures: reader.Int(fields, path, "consecutiveFailures", defaults.ConsecutiveFailures, 1, 1000),
            BaseEjectionTime: reader.Duration(fields, path, "baseEjectionTime", defaults.BaseEjectionTime, TimeSpan.FromMilliseconds(1)),
            MaxEjectionTime: reader.Duration(fields, path, "maxEjectionTime", defaults.MaxEjectionTime, TimeSpan.FromMilliseconds(1)),
            MaxEjectionPercent: reader.Int(fields, path, "maxEjectionPercent", defaults.MaxEjectionPercent, 0, 100));
        if (options.MaxEjectionTime < options.BaseEjectionTime)
        {
            reader.Error(fields.GetValueOrDefault("maxEjectionTime") ?? node, $"{path}.maxEjectionTime", $"{ValueParsers.FormatDuration(options.MaxEjectionTime)} is below baseEjectionTime ({ValueParsers.FormatDuration(options.BaseEjectionTime)})");
        }

        return options;
    }
}
