using System.Globalization;
using System.Net;
using Forwarder.Tests.L7.Http2.Server;

namespace Forwarder.Tests.L7.Http2;

/// <summary>
/// Runs a python3-h2 client against a listener: one preamble (the imports, socket <c>s</c> to
/// the port in argv[1] with a 60 s timeout, client connection <c>c</c> with its preface queued
/// but not sent, so a test decides what rides in the first write) followed by the test's own
/// requests and checks, which read their arguments from argv[2] on.
/// </summary>
internal static class PythonH2Client
{
    private const string Preamble = """
        import hashlib, json, socket, sys, time
        import h2.config, h2.connection, h2.events, h2.settings
        port = int(sys.argv[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True{0}))
        c.initiate_connection()

        """;

    // A client that validates nothing writes requests exactly as the test gives them, malformed ones included.
    private const string NoValidation = ", validate_outbound_headers=False, normalize_outbound_headers=False, validate_inbound_headers=False";

    /// <summary>The script's exit code, standard output and standard error; a timeout if it runs past 90 s.</summary>
    public static Task<(int ExitCode, string Output, string Error)> RunAsync(IPEndPoint listener, string script, IEnumerable<string> arguments, bool validating = true)
        => PeerProcess.RunAsync(
            "/usr/bin/python3",
            ["-c", string.Format(CultureInfo.InvariantCulture, Preamble, validating ? string.Empty : NoValidation) + script, listener.Port.ToString(CultureInfo.InvariantCulture), .. arguments],
            timeout: TimeSpan.FromSeconds(90));

    /// <summary>The script's standard output, trimmed, once it exited 0; fails the test with its output and errors otherwise.</summary>
    public static async Task<string> OutputAsync(IPEndPoint listener, string script, IEnumerable<string> arguments, bool validating = true)
    {
        var (exit, output, error) = await RunAsync(listener, script, arguments, validating);
        Assert.True(exit == 0, $"the python3-h2 client exited {exit}: {error}\n{output}");
        return output.Trim();
    }
}
