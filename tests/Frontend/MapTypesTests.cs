using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Frontend;

/// <summary>
/// <see cref="MapTypes.IsDefined"/> stands in for <c>Enum.IsDefined</c> on the loader's and map_create's path (a bound
/// instead of reflection, for the cold start): it must say the same for every value, so a map type added to
/// <see cref="MapType"/> past <see cref="MapTypes.Last"/>, or a gap in the numbering, fails here.
/// </summary>
public class MapTypesTests
{
    [Test]
    public void IsDefinedAgreesWithTheEnum()
    {
        foreach (uint v in Enumerable.Range(0, 300).Select(i => (uint)i).Append(uint.MaxValue).Append(0x8000_0000u))
            Assert.That(MapTypes.IsDefined((MapType)v), Is.EqualTo(Enum.IsDefined((MapType)v)), $"map type {v}");
        Assert.That(MapTypes.Last, Is.EqualTo(Enum.GetValues<MapType>().Max()));
    }
}
