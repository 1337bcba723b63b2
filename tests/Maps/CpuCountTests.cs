using System.Text;
using BpfJit.Runtime.Maps;

namespace BpfJit.Tests.Maps;

/// <summary>
/// <see cref="Cpu.Count"/> is the kernel's number of possible CPUs (the highest id of
/// <c>/sys/devices/system/cpu/possible</c> plus one), at least <see cref="Environment.ProcessorCount"/>.
/// </summary>
public class CpuCountTests
{
    [TestCase("0\n", 0)]
    [TestCase("0-7\n", 7)]
    [TestCase("0,2-5", 5)]
    [TestCase("0-3,8-11\n", 11)]
    [TestCase("0-127\n", 127)]
    public void HighestIdOfACpuList(string list, int highest) =>
        Assert.That(Cpu.HighestId(Encoding.ASCII.GetBytes(list)), Is.EqualTo(highest));

    [Test]
    public void CountIsThePossibleCpus()
    {
        const string path = "/sys/devices/system/cpu/possible";
        if (!File.Exists(path)) Assert.Ignore($"{path} does not exist here");
        // sysfs says 4096 bytes in st_size whatever the file holds: the read must go to the end, not by the size.
        string text = File.ReadAllText(path).Trim();
        int possible = text.Split(',').Select(r => int.Parse(r.Split('-')[^1], System.Globalization.CultureInfo.InvariantCulture)).Max() + 1;
        Assert.That(Cpu.Count, Is.EqualTo(Math.Max(possible, Environment.ProcessorCount)));
    }
}
