namespace Forwarder.Bench.Reports;

/// <summary>An axis from 0 to <see cref="Top"/> in <see cref="Count"/> steps of 1, 2 or 5 times a power of ten.</summary>
internal readonly record struct NiceScale(double Step, int Count)
{
    // Tolerates the last bits of error in max / step so that e.g. 1.0 with step 0.2 stays at 5 steps, not 6.
    private const double Slack = 1e-9;

    public double Top => Step * Count;

    /// <summary>The tick values 0, Step, ..., Top.</summary>
    public IEnumerable<double> Ticks
    {
        get
        {
            double step = Step;
            return Enumerable.Range(0, Count + 1).Select(i => i * step);
        }
    }

    /// <summary>The smallest 1-2-5 step giving at most <paramref name="maxSteps"/> steps to reach <paramref name="max"/>.</summary>
    public static NiceScale For(double max, int maxSteps = 5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSteps, 1);
        // An empty or all-zero chart still gets a readable 0..1 axis.
        if (!double.IsFinite(max) || max <= 0)
        {
            max = 1;
        }

        double raw = max / maxSteps;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double residual = raw / magnitude;
        double step = magnitude * (residual <= 1 + Slack ? 1 : residual <= 2 + Slack ? 2 : residual <= 5 + Slack ? 5 : 10);
        return new NiceScale(step, Math.Max(1, (int)Math.Ceiling(max / step - Slack)));
    }
}
