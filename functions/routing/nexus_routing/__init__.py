"""Best execution: venues, the NBBO, the smart order router and the Rule 606 / 605 reports."""
