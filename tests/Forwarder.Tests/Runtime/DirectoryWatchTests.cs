using Forwarder.Runtime;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Runtime;

public sealed class DirectoryWatchTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("forwarder-watch-").FullName;
    private int _changes;

    [Fact]
    public async Task Start_FileWrittenRenamedAndDeleted_CallsBackForEach()
    {
        using var watch = DirectoryWatch.Start(_directory, () => Interlocked.Increment(ref _changes));
        var path = Path.Combine(_directory, "a.yaml");

        await File.WriteAllTextAsync(path, "one");
        await Eventually.TrueAsync(() => Volatile.Read(ref _changes) > 0, "a new file is seen");
        var seen = Volatile.Read(ref _changes);
        File.Move(path, Path.Combine(_directory, "b.yaml"));
        await Eventually.TrueAsync(() => Volatile.Read(ref _changes) > seen, "a rename is seen");
        seen = Volatile.Read(ref _changes);
        File.Delete(Path.Combine(_directory, "b.yaml"));
        await Eventually.TrueAsync(() => Volatile.Read(ref _changes) > seen, "a removal is seen");
    }

    [Fact]
    public async Task Dispose_StopsTheThreadAndCallsBackNoMore()
    {
        var watch = DirectoryWatch.Start(_directory, () => Interlocked.Increment(ref _changes));
        await Task.Run(watch.Dispose).WaitAsync(Eventually.DefaultTimeout);

        await File.WriteAllTextAsync(Path.Combine(_directory, "after.yaml"), "x");

        Assert.Equal(0, Volatile.Read(ref _changes));
    }

    [Fact]
    public async Task Dispose_AfterTheDirectoryWasRemoved_DoesNotHang()
    {
        var inner = Directory.CreateDirectory(Path.Combine(_directory, "gone")).FullName;
        var watch = DirectoryWatch.Start(inner, () => Interlocked.Increment(ref _changes));
        Directory.Delete(inner);
        await Eventually.TrueAsync(() => Volatile.Read(ref _changes) > 0, "the directory's removal is seen");

        await Task.Run(watch.Dispose).WaitAsync(Eventually.DefaultTimeout);
    }

    [Fact]
    public async Task Start_CallbackThrows_ReportsItAndKeepsWatching()
    {
        var failures = 0;
        using var watch = DirectoryWatch.Start(
            _directory,
            () =>
            {
                Interlocked.Increment(ref _changes);
                throw new InvalidOperationException("callback failed");
            },
            _ => Interlocked.Increment(ref failures));

        await File.WriteAllTextAsync(Path.Combine(_directory, "one.yaml"), "1");
        await Eventually.TrueAsync(() => Volatile.Read(ref failures) > 0, "the first callback's exception is reported");
        var seen = Volatile.Read(ref _changes);
        await File.WriteAllTextAsync(Path.Combine(_directory, "two.yaml"), "2");
        await Eventually.TrueAsync(() => Volatile.Read(ref _changes) > seen, "the watch goes on after a throwing callback");
    }

    [Fact]
    public void Start_MissingDirectory_Throws()
        => Assert.Throws<IOException>(() => DirectoryWatch.Start(Path.Combine(_directory, "missing"), () => { }));

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
