from django import forms


class FindOrderForm(forms.Form):
    number = forms.CharField(max_length=16, label="Order number", help_text="As in your confirmation, e.g. RK-ABCD-2345.")
    email = forms.EmailField(label="E-mail used at checkout")
