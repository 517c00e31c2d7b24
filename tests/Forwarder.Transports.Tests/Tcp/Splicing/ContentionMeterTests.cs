using Forwarder.Transports.Tcp.Splicing;

namespace Forwarder.Transports.Tests.Tcp.Splicing;

public sealed class ContentionMeterTests
{
    private const long Window = 250_000_000;

    [Theory]
    // Run-queue wait over (run + wait): above 0.6 enters, below 0.4 leaves, in between keeps the state.
    [InlineData(false, 30, 70, true)]
    [InlineData(false, 50, 50, false)]
    [InlineData(true, 50, 50, true)]
    [InlineData(true, 70, 30, false)]
    [InlineData(false, 100, 0, false)]
    // Wanting under 5% of a core says nothing either way.
    [InlineData(false, 1, 9, false)]
    [InlineData(true, 9, 1, true)]
    public void Decide_UsesTheShareOfWaitInTheTimeTheThreadWantedACpu(bool contended, int runPercent, int waitPercent, bool expected)
    {
        var run = Window / 100 * runPercent / 10;
        var wait = Window / 100 * waitPercent / 10;
        Assert.Equal(expected, ContentionMeter.Decide(contended, run, wait, Window));
    }

    [Theory]
    [InlineData("123456789 987654 321\n", true, 123456789, 987654)]
    [InlineData("5 6 7", true, 5, 6)]
    [InlineData("", false, 0, 0)]
    [InlineData("12", false, 12, 0)]
    [InlineData("12,34 5", false, 12, 0)]
    public void TryParse_ReadsRunAndWaitFromASchedstatLine(string line, bool parsed, long run, long wait)
    {
        Assert.Equal(parsed, ContentionMeter.TryParse(System.Text.Encoding.ASCII.GetBytes(line), out var gotRun, out var gotWait));
        Assert.Equal((run, wait), (gotRun, gotWait));
    }

    /// <summary>A schedstat that cannot be read (EIO, as /proc/self/mem gives at offset 0) or parsed: uncontended for good, told once.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Meter_OnAnUnreadableSchedstat_StaysUncontended_AndTellsOnce(bool ioError)
    {
        var path = ioError ? "/proc/self/mem" : Path.GetTempFileName();
        try
        {
            if (!ioError)
            {
                File.WriteAllText(path, "not a schedstat\n");
            }

            var failures = new List<Exception>();
            using var meter = new ContentionMeter(path, failures.Add);
            Assert.False(meter.Sample());
            Assert.False(meter.Sample());
            Assert.Single(failures);
            Assert.IsAssignableFrom(ioError ? typeof(IOException) : typeof(InvalidDataException), failures[0]);
        }
        finally
        {
            if (!ioError)
            {
                File.Delete(path);
            }
        }
    }

    /// <summary>A schedstat that stops parsing later keeps the last state rather than failing.</summary>
    [Fact]
    public void Meter_WhenALaterReadDoesNotParse_KeepsItsState()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "1000 2000 3\n");
            var failures = new List<Exception>();
            using var meter = new ContentionMeter(path, failures.Add);
            File.WriteAllText(path, "garbage\n");
            Assert.False(meter.Sample());
            Assert.Empty(failures);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
