using Forwarder.Configuration;

namespace Forwarder.Tests.Configuration;

/// <summary><c>http.responseBufferPerConnection</c>: what one native HTTP/2 client connection's upstream streams may buffer past their opening windows.</summary>
public sealed class HttpResponseBufferConfigTests
{
    private const string Listener = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n    protocol: http\n";

    private const string Services = """
        services:
          blue:
            endpoints: [ { address: '127.0.0.1:9001' } ]
        """;

    [Theory]
    [InlineData("", 4 * 1024 * 1024)]
    [InlineData("    http: { responseBufferPerConnection: 256KiB }\n", 256 * 1024)]
    [InlineData("    http: { responseBufferPerConnection: 16MiB }\n", 16 * 1024 * 1024)]
    [InlineData("    http: { responseBufferPerConnection: 1GiB }\n", 1 << 30)]
    public void Parse_ReadsTheSize_DefaultingTo4MiB(string http, int expected)
    {
        var config = ConfigLoader.Parse(Listener + http + "    routes: [ { service: blue } ]\n" + Services, "ok.yaml");
        Assert.Equal(expected, config.Listeners[0].Http!.ResponseBufferPerConnection);
    }

    [Theory]
    [InlineData("255KiB", 42)]
    [InlineData("2GiB", 42)]
    [InlineData("lots", 42)]
    [InlineData("-1", 42)]
    public void Parse_OutOfRangeOrNotASize_NamesFileLineAndField(string value, int column)
    {
        var yaml = Listener + $"    http: {{ responseBufferPerConnection: {value} }}\n    routes: [ {{ service: blue }} ]\n" + Services;
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "bad.yaml"));
        var only = Assert.Single(error.Errors).ToString();
        Assert.StartsWith($"bad.yaml:5:{column}: ", only, StringComparison.Ordinal);
        Assert.Contains($"listeners[0].http.responseBufferPerConnection: expected a size in bytes from 262144 to 1073741824 such as 65536, 64KiB or 1MiB, got '{value}'", only, StringComparison.Ordinal);
    }
}
