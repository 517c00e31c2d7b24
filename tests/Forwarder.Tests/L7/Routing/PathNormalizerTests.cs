using System.Text;
using Forwarder.L7.Routing;

namespace Forwarder.Tests.L7.Routing;

public sealed class PathNormalizerTests
{
    private static string Normalize(string path, PathNormalization mode = PathNormalization.DotSegments)
    {
        var bytes = Encoding.Latin1.GetBytes(path);
        var destination = new byte[bytes.Length];
        return PathNormalizer.TryNormalize(bytes, destination, mode, out var written) ? Encoding.Latin1.GetString(destination, 0, written) : path;
    }

    [Theory]
    [InlineData("/public/../admin", "/admin")]
    [InlineData("/public/%2e%2e/admin", "/admin")]
    [InlineData("/public/%2E%2E/admin", "/admin")]
    [InlineData("/public/.%2e/admin", "/admin")]
    [InlineData("/public/./../admin", "/admin")]
    [InlineData("/a/./b", "/a/b")]
    [InlineData("/a/%2e/b", "/a/b")]
    [InlineData("/a/b/..", "/a/")]
    [InlineData("/a/b/../", "/a/")]
    [InlineData("/a/.", "/a/")]
    [InlineData("/..", "/")]
    [InlineData("/../../etc/passwd", "/etc/passwd")]
    [InlineData("/a/../../b", "/b")]
    [InlineData("/.", "/")]
    [InlineData("/a/b/c/./../../g", "/a/g")]
    [InlineData("/mid/content=5/../6", "/mid/6")]
    public void TryNormalize_DotSegments_AreResolvedNeverAboveTheRoot(string path, string expected)
        => Assert.Equal(expected, Normalize(path));

    [Theory]
    [InlineData("/")]
    [InlineData("/a/b/c")]
    [InlineData("/a/b/")]
    [InlineData("/a..b/c.d/.e/f./...")]
    [InlineData("/a%2eb/%2e%2e%2e/%2F../x")]
    [InlineData("/a//b")]
    [InlineData("/a/%2f/..%2f")]
    [InlineData("/a\\..\\b")]
    [InlineData("*")]
    [InlineData("")]
    public void TryNormalize_NothingToResolve_LeavesThePathAlone(string path)
    {
        var bytes = Encoding.Latin1.GetBytes(path);
        Assert.False(PathNormalizer.TryNormalize(bytes, new byte[bytes.Length], PathNormalization.DotSegments, out var written));
        Assert.Equal(0, written);
    }

    [Theory]
    [InlineData("/a//b", "/a/b")]
    [InlineData("//a///b//", "/a/b/")]
    [InlineData("/a//..//b", "/b")]
    [InlineData("///", "/")]
    public void TryNormalize_Full_AlsoMergesSlashes(string path, string expected)
        => Assert.Equal(expected, Normalize(path, PathNormalization.Full));

    [Fact]
    public void TryNormalize_Off_ChangesNothing()
        => Assert.Equal("/public/../admin", Normalize("/public/../admin", PathNormalization.Off));

    [Fact]
    public void TryNormalize_InPlace_GivesTheSameResult()
    {
        var bytes = Encoding.ASCII.GetBytes("/x/./y/%2e%2e//z/../w");
        Assert.True(PathNormalizer.TryNormalize(bytes, bytes, PathNormalization.Full, out var written));
        Assert.Equal("/x/w", Encoding.ASCII.GetString(bytes, 0, written));
    }

    [Fact]
    public void Normalize_String_MatchesTheBytes_AndReturnsTheSameInstanceWhenClean()
    {
        const string clean = "/api/v1/items";
        Assert.Same(clean, PathNormalizer.Normalize(clean, PathNormalization.Full));
        Assert.Equal("/admin", PathNormalizer.Normalize("/public/%2E./admin", PathNormalization.DotSegments));
    }

    [Fact]
    public void TryNormalize_CleanPath_DoesNotAllocate()
    {
        var path = "/api/v1/users/42"u8.ToArray();
        var destination = new byte[path.Length];
        PathNormalizer.TryNormalize(path, destination, PathNormalization.Full, out _);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            PathNormalizer.TryNormalize(path, destination, PathNormalization.Full, out _);
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }

    /// <summary>
    /// Properties over many generated paths built from the pieces that matter (dots, escaped
    /// dots, slashes, other escapes, plain names): the result is normal (normalizing it again
    /// changes nothing), stays rooted, holds no dot segment or (in full mode) empty segment, never
    /// grows, and keeps every other segment byte for byte.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryNormalize_GeneratedPaths_ResultIsStableRootedAndFreeOfDotSegments(bool mergeSlashes)
    {
        var mode = mergeSlashes ? PathNormalization.Full : PathNormalization.DotSegments;
        string[] pieces = ["a", "bc", ".", "..", "%2e", "%2E%2e", ".%2e", "...", "%2f", "%41", "", "x.y", "\\.."];
        var random = new Random(20261205);
        for (var n = 0; n < 20_000; n++)
        {
            var path = new StringBuilder();
            var count = random.Next(0, 9);
            for (var i = 0; i < count; i++)
            {
                path.Append('/').Append(pieces[random.Next(pieces.Length)]);
            }

            if (path.Length == 0 || random.Next(4) == 0)
            {
                path.Append('/');
            }

            var original = path.ToString();
            var normalized = Normalize(original, mode);
            Assert.StartsWith("/", normalized, StringComparison.Ordinal);
            Assert.True(normalized.Length <= original.Length, original);
            Assert.Equal(normalized, Normalize(normalized, mode));
            var segments = normalized.Split('/')[1..];
            Assert.DoesNotContain(segments, s => s is "." or ".." || s.Equals("%2e", StringComparison.OrdinalIgnoreCase) || s.Equals("%2e%2e", StringComparison.OrdinalIgnoreCase) || s.Equals(".%2e", StringComparison.OrdinalIgnoreCase));
            if (mode == PathNormalization.Full)
            {
                Assert.DoesNotContain("//", normalized, StringComparison.Ordinal);
            }

            // Every segment left is one of the pieces as it was: nothing but dot segments is ever decoded.
            Assert.All(segments, s => Assert.Contains(s, pieces));
        }
    }

    [Theory]
    [InlineData("/public/%2e%2e/admin?next=/../x", "/admin", "next=/../x")]
    [InlineData("/a/./b", "/a/b", "")]
    public void NormalizePath_OnAHead_RewritesThePathAndKeepsTheQuery(string target, string path, string query)
    {
        var head = new Forwarder.L7.Http1.Http1RequestHead();
        var request = Encoding.ASCII.GetBytes($"GET {target} HTTP/1.1\r\nHost: a\r\nX-After: kept\r\n\r\n");
        Assert.Equal(Forwarder.L7.Http1.Http1ParseStatus.Complete, Forwarder.L7.Http1.Http1RequestParser.TryParse(new System.Buffers.ReadOnlySequence<byte>(request), Forwarder.L7.Http1.Http1Limits.Default, head, out _, out _));

        Assert.True(head.NormalizePath(PathNormalization.DotSegments));

        Assert.Equal(path, Encoding.ASCII.GetString(head.Path));
        Assert.Equal(query, Encoding.ASCII.GetString(head.Query));
        Assert.Equal(query.Length == 0 ? path : $"{path}?{query}", Encoding.ASCII.GetString(head.Target));
        Assert.Equal("kept", Encoding.ASCII.GetString(head["x-after"u8]));
        Assert.False(head.NormalizePath(PathNormalization.DotSegments));
    }
}
